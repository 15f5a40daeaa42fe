"""The emulator's HTTP face: the REST paths the official client and kubectl use, over a `Cluster`.

Usage::

    server = serve_cluster(cluster, tick_interval_s=0.1)   # 127.0.0.1, free port, controller ticking
    server.url                                             # http://127.0.0.1:PORT
    server.requests[-1].content_type                       # what the last request declared
    server.stop()                                          # stops ticks, watches, connections, threads

Stdlib `ThreadingHTTPServer` (HTTP/1.1, keep-alive) in a background thread. JSON answers carry
`Content-Type: application/json`, pod logs `text/plain`; errors are `Status` objects. Tables
(`Accept: ...;as=Table;g=meta.k8s.io`) are served for kubectl's server-side printing, and
`?watch=true` streams newline-delimited `{"type","object"}` events (chunked).

Why one module past 400 lines: it is one thing, the REST face of `Cluster` (routing, content
negotiation, watch streaming); what it answers is computed by the modules it calls (tables, discovery,
patch, resources).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.http_messages import RecordedRequest
from sandbox.k8s import discovery
from sandbox.k8s.cluster import Cluster
from sandbox.k8s.errors import ApiError
from sandbox.k8s.objects import parse_time
from sandbox.k8s.patch import PATCH_TYPES
from sandbox.k8s.resources import Resource, served
from sandbox.k8s.tables import to_table

__all__ = ["ClusterServer", "RecordedRequest", "serve_cluster"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's request size limit
MAX_WATCH_S = 600.0
WATCH_POLL_S = 0.1

_RESOURCE_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/(?:namespaces/(?P<ns>[^/]+)/)?(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$"
)


class _Response:
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


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True

    def __init__(self, address: tuple[str, int], app: ClusterServer) -> None:
        self.app = app
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "sandbox-kube-apiserver/1.32"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.app._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.app._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _send(self, resp: _Response) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(resp.data)

    def _handle(self, method: str) -> None:
        app = self.server.app
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(
                _Response(413, ApiError(413, "RequestEntityTooLarge", "request body too large").status())
            )
            return
        body = self.rfile.read(length) if length else b""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        app._record(RecordedRequest.of(method, split.path, query, dict(self.headers.items()), body))
        try:
            result = app.route(
                method, split.path, query, body, content_type, self.headers.get("Accept") or ""
            )
            if isinstance(result, _Watch):
                self._stream_watch(result)
                return
            self._send(result)
        except ApiError as exc:
            self._send(_Response(exc.code, exc.status()))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            log.exception("k8s emulator: %s %s failed", method, self.path)
            self._send(_Response(500, ApiError(500, "InternalError", f"internal error: {exc}").status()))

    def _peer_closed(self) -> bool:
        """True once the client has hung up (a watch has nothing to read from it otherwise)."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream_watch(self, watch: _Watch) -> None:
        app = self.server.app
        with app._watch_done:
            app._open_watches += 1
        try:
            self._stream_watch_events(watch)
        finally:
            with app._watch_done:
                app._open_watches -= 1
                app._watch_done.notify_all()

    def _stream_watch_events(self, watch: _Watch) -> None:
        app = self.server.app
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        try:
            if watch.error is not None:
                self._chunk(json.dumps({"type": "ERROR", "object": watch.error.status()}).encode() + b"\n")
                return
            if watch.watcher is None:
                raise RuntimeError("a watch without its watcher")
            deadline = app.monotonic() + watch.timeout_s
            while not app.stopping.is_set() and app.monotonic() < deadline:
                change = watch.watcher.next(timeout_s=WATCH_POLL_S)
                if change is None:
                    if self._peer_closed():
                        return
                    continue
                event = {"type": change.type, "object": change.object}
                self._chunk(json.dumps(event, separators=(",", ":")).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
        finally:
            if watch.watcher is not None:
                watch.watcher.close()
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            return


@dataclass
class _Watch:
    watcher: Any
    timeout_s: float
    error: ApiError | None = None


class ClusterServer:
    """A running emulator: `url`, `requests` (recorded, newest last), `stop()`."""

    def __init__(
        self, cluster: Cluster, host: str = "127.0.0.1", port: int = 0, tick_interval_s: float = 0.1
    ) -> None:
        self.cluster = cluster
        self.tick_interval_s = tick_interval_s
        self.monotonic = time.monotonic
        self.stopping = threading.Event()
        self._requests: deque[RecordedRequest] = deque(maxlen=2000)
        self._requests_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._open_watches = 0
        self._watch_done = threading.Condition()
        self._httpd = _Server((host, port), self)
        bound_host, bound_port = self._httpd.server_address[:2]
        self.host, self.port = str(bound_host), int(bound_port)
        self.url = f"http://{self.host}:{self.port}"
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="k8s-emulator-http",
            daemon=True,
        )
        self._tick_thread = threading.Thread(
            target=self._tick_loop, name="k8s-emulator-controller", daemon=True
        )

    # ---- lifecycle ----

    def start(self) -> ClusterServer:
        self._serve_thread.start()
        if self.tick_interval_s > 0:
            self._tick_thread.start()
        return self

    def stop(self) -> None:
        """Stop the controller loop, end watches, close connections, and join every thread."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self._tick_thread.is_alive():
            self._tick_thread.join(timeout=10)
        self._httpd.shutdown()
        # Open watches see `stopping` within one poll and end their stream properly (the last chunk);
        # only then are idle keep-alive connections cut.
        with self._watch_done:
            self._watch_done.wait_for(lambda: self._open_watches == 0, timeout=2 * WATCH_POLL_S + 1)
        with self._conn_lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the peer
        self._httpd.server_close()
        self._serve_thread.join(timeout=10)

    def __enter__(self) -> ClusterServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick_loop(self) -> None:
        while not self.stopping.wait(self.tick_interval_s):
            try:
                self.cluster.tick()
            except Exception:
                log.exception("k8s emulator: controller tick failed")

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._conn_lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _record(self, request: RecordedRequest) -> None:
        with self._requests_lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._requests_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    # ---- routing ----

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, content_type: str, accept: str
    ) -> _Response | _Watch:
        if method == "GET":
            doc = self._discovery(path)
            if doc is not None:
                return _Response(200, doc)
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
    ) -> _Response:
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
            return _Response(
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
        return _Response(
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
    ) -> _Response | _Watch:
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
                        return _Watch(None, 0, exc)
                    raise
                return _Watch(watcher, timeout_s)
            items, rv = self.cluster.list_with_version(
                resource.kind, ns, _one(query, "labelSelector"), _one(query, "fieldSelector")
            )
            return self._list_response(resource, items, rv, query, accept)
        if method == "POST" and "create" in resource.verbs and ns is not None:
            obj = self._json_body(body, content_type)
            return _Response(201, self.cluster.create(resource.kind, ns, obj, dry_run=_dry_run(query)))
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
    ) -> _Response:
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
            return _Response(200, text, "text/plain")
        if sub == "scale":
            if method == "GET":
                return _Response(200, self.cluster.get_scale(ns, name))
            if method == "PUT":
                return _Response(
                    200,
                    self.cluster.replace_scale(
                        ns, name, self._json_body(body, content_type), _dry_run(query)
                    ),
                )
            if method == "PATCH":
                patch = self._json_body(body, content_type, PATCH_TYPES)
                return _Response(
                    200, self.cluster.patch_scale(ns, name, patch, content_type, _dry_run(query))
                )
            raise ApiError.method_not_allowed(method, f"{resource.plural}/scale")
        if sub == "status" and method != "GET":
            raise ApiError.method_not_allowed(method, f"{resource.plural}/status")
        if method == "GET":
            obj = self.cluster.get(kind, ns, name)
            if "as=Table" in accept:
                return _Response(
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
            return _Response(200, obj)
        if method == "PUT" and "update" in resource.verbs:
            obj = self._json_body(body, content_type)
            return _Response(200, self.cluster.replace(kind, ns, name, obj, dry_run=_dry_run(query)))
        if method == "PATCH" and "patch" in resource.verbs:
            patch = self._json_body(body, content_type, PATCH_TYPES)
            return _Response(
                200, self.cluster.apply_patch(kind, ns, name, patch, content_type, dry_run=_dry_run(query))
            )
        if method == "DELETE" and "delete" in resource.verbs:
            deleted = self.cluster.delete(kind, ns, name, dry_run=_dry_run(query))
            if kind == "Pod":
                return _Response(200, deleted)
            return _Response(
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
    ) -> _Response:
        if method != "GET":
            raise ApiError.method_not_allowed(method, resource.plural)
        if resource.kind == "PodMetrics":
            items = self.cluster.pod_metrics(ns, name, _one(query, "labelSelector"))
        else:
            items = self.cluster.node_metrics(name)
        if name is not None:
            return _Response(200, items[0])
        meta = {"resourceVersion": ""}
        return _Response(
            200,
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": meta,
                "items": items,
            },
        )


def serve_cluster(
    cluster: Cluster, host: str = "127.0.0.1", port: int = 0, tick_interval_s: float = 0.1
) -> ClusterServer:
    """Serve `cluster` over HTTP on `host:port` (0 = a free port) and tick its controller every
    `tick_interval_s` seconds (0 disables the background ticks: drive `cluster.tick()` yourself)."""
    return ClusterServer(cluster, host, port, tick_interval_s).start()
