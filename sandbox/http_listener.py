"""The socket side of `HttpServer` (sandbox/httpserver.py): the listener that accepts connections
until woken (no shutdown poll interval) and the request handler that reads one request, hands it to
the server's dispatch and writes the answer with `Connection: close`. Bodies past `MAX_BODY_BYTES`
are refused with 413.
"""

from __future__ import annotations

import selectors
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from sandbox.http_messages import Request, Response

if TYPE_CHECKING:
    from sandbox.httpserver import HttpServer

__all__ = ["MAX_BODY_BYTES", "Listener", "RequestHandler"]

MAX_BODY_BYTES = 10 * 1024 * 1024


class Listener(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128  # the default 5 drops connects under a burst (clients then wait 1 s to retry)

    def __init__(self, address: tuple[str, int], owner: HttpServer) -> None:
        self.owner = owner
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()  # before the bind: a failed bind closes them
        super().__init__(address, RequestHandler)

    def serve(self) -> None:
        """Accept connections until `wake()`; each request runs in its own daemon thread.

        Unlike `serve_forever`, which polls for its shutdown flag, this wakes at once on `wake()`,
        so stopping a server costs no poll interval.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    self._accept_one()

    def _accept_one(self) -> None:
        try:
            request, client_address = self.get_request()
        except OSError:
            return  # the client went away between select and accept
        if not self.verify_request(request, client_address):
            self.shutdown_request(request)
            return
        try:
            self.process_request(request, client_address)  # ThreadingMixIn: a thread per connection
        except Exception:
            self.handle_error(request, client_address)  # socketserver prints the traceback
            self.shutdown_request(request)

    def wake(self) -> None:
        """Make `serve()` return."""
        self._stopping.set()
        self._wake_w.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Listener

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        return  # the stand-ins record requests; stderr stays quiet

    def _handle(self) -> None:
        self.close_connection = True
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(Response.json({"error": "request_too_large"}, status=413))
            return
        raw = self.rfile.read(length) if length > 0 else b""
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            raw_body=raw,
        )
        response = self.server.owner._dispatch(request)
        if response is not None:
            self._send(response)

    def _send(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            if response.content_type:
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Connection", "close")
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (its timeout); nothing left to answer

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle
