"""API errors as the Kubernetes API server reports them: a `Status` object with code, reason and message.

Usage::

    raise ApiError.not_found("deployments", "web", group="apps")
    status_dict = err.status()           # the JSON body, `kind: Status`

Raised by `Cluster` methods (in-process callers see the same errors a client sees over HTTP) and turned
into responses by the server.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError"]


class ApiError(Exception):
    """One failed API call: HTTP `code`, machine `reason` (NotFound, Conflict, ...), human `message`."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The `Status` body the API server sends for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    @staticmethod
    def _qualified(resource: str, group: str) -> str:
        return f"{resource}.{group}" if group else resource

    @classmethod
    def not_found(cls, resource: str, name: str, group: str = "") -> ApiError:
        return cls(
            404,
            "NotFound",
            f'{cls._qualified(resource, group)} "{name}" not found',
            {"name": name, "group": group, "kind": resource},
        )

    @classmethod
    def already_exists(cls, resource: str, name: str, group: str = "") -> ApiError:
        return cls(
            409,
            "AlreadyExists",
            f'{cls._qualified(resource, group)} "{name}" already exists',
            {"name": name, "group": group, "kind": resource},
        )

    @classmethod
    def conflict(cls, resource: str, name: str, group: str = "") -> ApiError:
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {cls._qualified(resource, group)} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again",
            {"name": name, "group": group, "kind": resource},
        )

    @classmethod
    def invalid(cls, kind: str, name: str, causes: list[tuple[str, str]], group: str = "") -> ApiError:
        """422: `causes` are (field path, message) pairs, e.g. ("spec.replicas", "Invalid value: -1: ...")."""
        text = ", ".join(f"{field}: {msg}" for field, msg in causes)
        qualified_kind = f"{kind}.{group}" if group else kind
        return cls(
            422,
            "Invalid",
            f'{qualified_kind} "{name}" is invalid: {text}',
            {
                "name": name,
                "group": group,
                "kind": kind,
                "causes": [
                    {"reason": "FieldValueInvalid", "message": msg, "field": field} for field, msg in causes
                ],
            },
        )

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def unsupported_media_type(cls, content_type: str, accepted: list[str]) -> ApiError:
        return cls(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format ({content_type or 'none'}) - "
            f"accepted media types include: {', '.join(accepted)}",
        )

    @classmethod
    def method_not_allowed(cls, method: str, path: str) -> ApiError:
        return cls(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on the requested resource ({method} {path})",
        )

    @classmethod
    def gone(cls, message: str) -> ApiError:
        return cls(410, "Expired", message)
