"""What the sandbox's HTTP servers hand to handlers and keep: `Request`, `Response`, `HttpError`,
`RecordedRequest`, and `parse_body` (a body parsed by its content type). sandbox/httpserver.py serves
them; the Kubernetes emulator records its requests with the same `RecordedRequest`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

__all__ = ["HttpError", "RecordedRequest", "Request", "Response", "parse_body"]


@dataclass(frozen=True)
class Response:
    """What a handler answers: status, body bytes and headers."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """A JSON body (`application/json; charset=utf-8`)."""
        return cls(status=status, body=json.dumps(obj).encode(), headers=dict(headers or {}))

    @classmethod
    def text(cls, text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """A `text/plain` body."""
        return cls(
            status=status,
            body=text.encode(),
            content_type="text/plain; charset=utf-8",
            headers=dict(headers or {}),
        )

    @classmethod
    def empty(cls, status: int = 204, headers: dict[str, str] | None = None) -> Response:
        """No body (204 by default)."""
        return cls(status=status, body=b"", content_type="", headers=dict(headers or {}))


class HttpError(Exception):
    """Raised by a handler: answered as `status` with a JSON `body` (and extra `headers`)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return Response.json(self.body, status=self.status, headers=self.headers)


@dataclass(frozen=True)
class Request:
    """One request as a handler sees it. Header names are lower case."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw_body: bytes
    params: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter `name`."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body parsed as JSON; `HttpError(400)` if it is not JSON."""
        try:
            return json.loads(self.raw_body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, {"error": "invalid_json", "detail": str(exc)}) from exc

    def form(self) -> dict[str, str]:
        """An `application/x-www-form-urlencoded` body as a dict (first value of each field)."""
        try:
            parsed = parse_qs(self.raw_body.decode(), keep_blank_values=True)
        except UnicodeDecodeError as exc:
            raise HttpError(400, {"error": "invalid_form", "detail": str(exc)}) from exc
        return {key: values[0] for key, values in parsed.items()}

    def body(self) -> Any:
        """The body parsed by its content type: JSON, form fields, else text; None when empty."""
        return parse_body(self.content_type, self.raw_body)


@dataclass(frozen=True)
class RecordedRequest:
    """What a server received, kept for assertions: the body is parsed by content type.

    The one record of the sandbox's servers: the stand-ins, the service and the Kubernetes emulator
    (`sandbox.k8s.server`) keep these. Header names are lower case.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    at: datetime

    @classmethod
    def of(
        cls, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw_body: bytes
    ) -> RecordedRequest:
        """Record a request now; `headers` in any case, the body parsed by its content type."""
        lowered = {k.lower(): v for k, v in headers.items()}
        content_type = lowered.get("content-type", "").split(";")[0].strip().lower()
        return cls(
            method=method,
            path=path,
            query=query,
            headers=lowered,
            body=parse_body(content_type, raw_body),
            raw_body=raw_body,
            at=datetime.now(UTC),
        )

    @property
    def content_type(self) -> str:
        """The declared media type, without parameters (`application/merge-patch+json`)."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def accept(self) -> str:
        return self.headers.get("accept", "")

    def json(self) -> Any:
        return json.loads(self.raw_body or b"null")


def parse_body(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    try:
        if content_type == "application/json" or content_type.endswith("+json"):
            return json.loads(raw)
        if content_type == "application/x-www-form-urlencoded":
            return {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        return raw.decode()
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", errors="replace")
