"""The HTTP side of the emulator: a stdlib `ThreadingHTTPServer` and its request handler.

HTTP/1.1 with keep-alive; each request is recorded, routed (`ApiRouter` through the `ClusterServer`),
and answered with `Content-Type` and `Content-Length`; an `ApiError` becomes its `Status` object, any
other failure a 500. A watch is streamed as chunked newline-delimited `{"type","object"}` events until
its timeout, the client hanging up, or the server stopping.
"""

from __future__ import annotations

import json
import logging
import select
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from sandbox.http_messages import RecordedRequest
from sandbox.k8s.errors import ApiError
from sandbox.k8s.server.routes import Response, Watch

if TYPE_CHECKING:
    from sandbox.k8s.server.app import ClusterServer

__all__ = ["MAX_BODY_BYTES", "WATCH_POLL_S", "ApiHTTPServer"]

log = logging.getLogger("sandbox.k8s.server")

MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's request size limit
WATCH_POLL_S = 0.1


class ApiHTTPServer(ThreadingHTTPServer):
    """The listening socket and its handler threads, for one `ClusterServer`."""

    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True

    def __init__(self, address: tuple[str, int], app: ClusterServer) -> None:
        self.app = app
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiHTTPServer
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

    def _send(self, resp: Response) -> None:
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
                Response(413, ApiError(413, "RequestEntityTooLarge", "request body too large").status())
            )
            return
        body = self.rfile.read(length) if length else b""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        app._record(RecordedRequest.of(method, split.path, query, dict(self.headers.items()), body))
        try:
            result = app.route(
                method, split.path, query, body, content_type, self.headers.get("Accept") or ""
            )
            if isinstance(result, Watch):
                self._stream_watch(result)
                return
            self._send(result)
        except ApiError as exc:
            self._send(Response(exc.code, exc.status()))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            log.exception("k8s emulator: %s %s failed", method, self.path)
            self._send(Response(500, ApiError(500, "InternalError", f"internal error: {exc}").status()))

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

    def _stream_watch(self, watch: Watch) -> None:
        app = self.server.app
        with app._watch_done:
            app._open_watches += 1
        try:
            self._stream_watch_events(watch)
        finally:
            with app._watch_done:
                app._open_watches -= 1
                app._watch_done.notify_all()

    def _stream_watch_events(self, watch: Watch) -> None:
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
