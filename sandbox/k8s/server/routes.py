"""`ApiRouter`: what the emulator answers to each REST path, over a `Cluster`.

Discovery (`/version`, `/api`, `/apis/...`), collections (list with `limit`/`continue`, watch, create)
and items (get, replace, patch, delete, the `log` and `scale` subresources), metrics.k8s.io; Tables for
`Accept: ...;as=Table;g=meta.k8s.io`. Errors are raised as `ApiError`s; the handler turns them into
`Status` answers. A `Watch` is handed back for the handler to stream.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from sandbox.k8s import discovery
from sandbox.k8s.cluster import Cluster
from sandbox.k8s.errors import ApiError
from sandbox.k8s.objects import parse_time
from sandbox.k8s.patch import PATCH_TYPES
from sandbox.k8s.resources import Resource, served
from sandbox.k8s.tables import to_table

__all__ = ["MAX_WATCH_S", "ApiRouter", "Response", "Watch"]

MAX_WATCH_S = 600.0

_RESOURCE_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/(?:namespaces/(?P<ns>[^/]+)/)?(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$"
)


class Response:
    """An answer: status, content type and the encoded body (JSON unless bytes or str)."""

    def __init__(self, status: int, body: Any, content_type: str = "application/json") -> None:
        self.status = status
        self.content_type = content_type
        if isinstance(body, bytes):
            self.data = body
        elif isinstance(body, str):
            self.data = body.encode()
        else:
            self.data = json.dumps(body, separators=(",", ":")).encode()


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return query.get(key, ["false"])[-1].lower() in ("true", "1")


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def _int_param(query: dict[str, list[str]], key: str, minimum: int = 0) -> int | None:
    raw = _one(query, key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError.bad_request(f"{key}: invalid value {raw!r}: must be an integer") from None
    if value < minimum:
        raise ApiError.bad_request(f"{key}: invalid value {value}: must be >= {minimum}")
    return value


def _dry_run(query: dict[str, list[str]]) -> bool:
    values = query.get("dryRun", [])
    for v in values:
        if v != "All":
            raise ApiError.bad_request(f'Invalid value: "{v}": supported values: "All"')
    return bool(values)


@dataclass
class Watch:
    """A watch to stream: the store's watcher and the time limit, or the error to send as its one event."""

    watcher: Any
    timeout_s: float
    error: ApiError | None = None


class ApiRouter:
    """Routes one request (method, path, query, body) to the `Cluster` and shapes its answer."""

    def __init__(self, cluster: Cluster, host: str, port: int) -> None:
        self.cluster = cluster
        self.host, self.port = host, port

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, content_type: str, accept: str
    ) -> Response | Watch:
        if method == "GET":
            doc = self._discovery(path)
            if doc is not None:
                return Response(200, doc)
        m = _RESOURCE_PATH.match(path)
        if m is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        group = m.group("group") or ""
        version = m.group("core") or m.group("version")
        resource = served(group, version, m.group("plural"))
        if resource is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns, name, sub = m.group("ns"), m.group("name"), m.group("sub")
        if ns is not None and not resource.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub is not None and sub not in resource.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if resource.namespaced and ns is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not resource.stored:
            return self._metrics(method, resource, ns, name, query, accept)
        if name is None:
            return self._collection(method, resource, ns, query, body, content_type, accept)
        return self._item(method, resource, ns or "", name, sub, query, body, content_type, accept)

    def _discovery(self, path: str) -> dict[str, Any] | None:
        p = path.rstrip("/") or "/"
        if p == "/version":
            return discovery.version_info()
        if p == "/api":
            return discovery.api_versions(f"{self.host}:{self.port}")
        if p == "/api/v1":
            return discovery.resource_list("", "v1")
        if p == "/apis":
            return discovery.group_list()
        parts = p.split("/")
        if len(parts) == 3 and parts[1] == "apis":
            return discovery.group(parts[2])
        if len(parts) == 4 and parts[1] == "apis":
            return discovery.resource_list(parts[2], parts[3])
        return None

    @staticmethod
    def _json_body(body: bytes, content_type: str, accepted: tuple[str, ...] = ("application/json",)) -> Any:
        # Like the API server's NegotiateInputSerializer, a create/update without a Content-Type is JSON
        # (the 37.x client sends none on POST/PUT); a PATCH must name its type.
        if not content_type and "application/json" in accepted:
            content_type = "application/json"
        if content_type not in accepted:
            raise ApiError.unsupported_media_type(content_type, list(accepted))
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise ApiError.bad_request(f"the request body is not valid JSON: {exc}") from exc

    def _list_response(
        self,
        resource: Resource,
        items: list[dict[str, Any]],
        rv: str,
        query: dict[str, list[str]],
        accept: str,
    ) -> Response:
        limit = _int_param(query, "limit")
        token = _one(query, "continue")
        start = 0
        if token:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(token.encode()))["start"])
            except (ValueError, KeyError, TypeError):
                raise ApiError.bad_request("continue key is not valid") from None
        next_token = None
        remaining = 0
        if limit:
            page = items[start : start + limit]
            if start + limit < len(items):
                remaining = len(items) - start - limit
                next_token = base64.urlsafe_b64encode(
                    json.dumps({"start": start + limit, "rv": rv}).encode()
                ).decode()
        else:
            page = items[start:]
        if "as=Table" in accept:
            return Response(
                200,
                to_table(
                    resource.kind,
                    resource.api_version,
                    page,
                    self.cluster.now(),
                    rv,
                    _one(query, "includeObject") or "Metadata",
                    next_token,
                ),
            )
        meta: dict[str, Any] = {"resourceVersion": rv}
        if next_token:
            meta["continue"] = next_token
            meta["remainingItemCount"] = remaining
        stripped = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in page]
        return Response(
            200,
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": meta,
                "items": stripped,
            },
        )

    def _collection(
        self,
        method: str,
        resource: Resource,
        ns: str | None,
        query: dict[str, list[str]],
        body: bytes,
        content_type: str,
        accept: str,
    ) -> Response | Watch:
        if method == "GET":
            if _flag(query, "watch"):
                timeout = _int_param(query, "timeoutSeconds")
                timeout_s = min(float(timeout) if timeout else MAX_WATCH_S, MAX_WATCH_S)
                try:
                    watcher = self.cluster.watch(
                        resource.kind,
                        ns,
                        _one(query, "resourceVersion"),
                        _one(query, "labelSelector"),
                        _one(query, "fieldSelector"),
                    )
                except ApiError as exc:
                    if exc.code == 410:
                        return Watch(None, 0, exc)
                    raise
                return Watch(watcher, timeout_s)
            items, rv = self.cluster.list_with_version(
                resource.kind, ns, _one(query, "labelSelector"), _one(query, "fieldSelector")
            )
            return self._list_response(resource, items, rv, query, accept)
        if method == "POST" and "create" in resource.verbs and ns is not None:
            obj = self._json_body(body, content_type)
            return Response(201, self.cluster.create(resource.kind, ns, obj, dry_run=_dry_run(query)))
        raise ApiError.method_not_allowed(method, resource.plural)

    def _item(
        self,
        method: str,
        resource: Resource,
        ns: str,
        name: str,
        sub: str | None,
        query: dict[str, list[str]],
        body: bytes,
        content_type: str,
        accept: str,
    ) -> Response:
        kind = resource.kind
        if sub == "log" and method == "GET":
            since_time = _one(query, "sinceTime")
            try:
                since = parse_time(since_time) if since_time else None
            except ValueError as exc:
                raise ApiError.bad_request(f"sinceTime: {exc}") from exc
            text = self.cluster.pod_log(
                ns,
                name,
                container=_one(query, "container") or None,
                previous=_flag(query, "previous"),
                tail_lines=_int_param(query, "tailLines"),
                since_seconds=_int_param(query, "sinceSeconds", minimum=1),
                since_time=since,
                timestamps=_flag(query, "timestamps"),
                limit_bytes=_int_param(query, "limitBytes", minimum=1),
            )
            return Response(200, text, "text/plain")
        if sub == "scale":
            if method == "GET":
                return Response(200, self.cluster.get_scale(ns, name))
            if method == "PUT":
                return Response(
                    200,
                    self.cluster.replace_scale(
                        ns, name, self._json_body(body, content_type), _dry_run(query)
                    ),
                )
            if method == "PATCH":
                patch = self._json_body(body, content_type, PATCH_TYPES)
                return Response(200, self.cluster.patch_scale(ns, name, patch, content_type, _dry_run(query)))
            raise ApiError.method_not_allowed(method, f"{resource.plural}/scale")
        if sub == "status" and method != "GET":
            raise ApiError.method_not_allowed(method, f"{resource.plural}/status")
        if method == "GET":
            obj = self.cluster.get(kind, ns, name)
            if "as=Table" in accept:
                return Response(
                    200,
                    to_table(
                        kind,
                        resource.api_version,
                        [obj],
                        self.cluster.now(),
                        obj["metadata"]["resourceVersion"],
                        _one(query, "includeObject") or "Metadata",
                    ),
                )
            return Response(200, obj)
        if method == "PUT" and "update" in resource.verbs:
            obj = self._json_body(body, content_type)
            return Response(200, self.cluster.replace(kind, ns, name, obj, dry_run=_dry_run(query)))
        if method == "PATCH" and "patch" in resource.verbs:
            patch = self._json_body(body, content_type, PATCH_TYPES)
            return Response(
                200, self.cluster.apply_patch(kind, ns, name, patch, content_type, dry_run=_dry_run(query))
            )
        if method == "DELETE" and "delete" in resource.verbs:
            deleted = self.cluster.delete(kind, ns, name, dry_run=_dry_run(query))
            if kind == "Pod":
                return Response(200, deleted)
            return Response(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": resource.group,
                        "kind": resource.plural,
                        "uid": deleted["metadata"]["uid"],
                    },
                },
            )
        raise ApiError.method_not_allowed(method, resource.plural)

    def _metrics(
        self,
        method: str,
        resource: Resource,
        ns: str | None,
        name: str | None,
        query: dict[str, list[str]],
        accept: str,
    ) -> Response:
        if method != "GET":
            raise ApiError.method_not_allowed(method, resource.plural)
        if resource.kind == "PodMetrics":
            items = self.cluster.pod_metrics(ns, name, _one(query, "labelSelector"))
        else:
            items = self.cluster.node_metrics(name)
        if name is not None:
            return Response(200, items[0])
        meta = {"resourceVersion": ""}
        return Response(
            200,
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": meta,
                "items": items,
            },
        )
