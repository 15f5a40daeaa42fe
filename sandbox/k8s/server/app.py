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

The REST face of `Cluster`, in three modules: this one (lifecycle: threads, controller ticks, recorded
requests, stop), `handler` (HTTP, watch streaming), `routes` (what each path answers); what the routes
answer is computed by the modules they call (tables, discovery, patch, resources).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque

from sandbox.http_messages import RecordedRequest
from sandbox.k8s.cluster import Cluster
from sandbox.k8s.server.handler import WATCH_POLL_S, ApiHTTPServer
from sandbox.k8s.server.routes import ApiRouter, Response, Watch

__all__ = ["ClusterServer", "serve_cluster"]

log = logging.getLogger("sandbox.k8s.server")


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
        self._httpd = ApiHTTPServer((host, port), self)
        bound_host, bound_port = self._httpd.server_address[:2]
        self.host, self.port = str(bound_host), int(bound_port)
        self.url = f"http://{self.host}:{self.port}"
        self._router = ApiRouter(cluster, self.host, self.port)
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
    ) -> Response | Watch:
        """The answer to one request (`ApiRouter.route`); `ApiError` for what the API server refuses."""
        return self._router.route(method, path, query, body, content_type, accept)


def serve_cluster(
    cluster: Cluster, host: str = "127.0.0.1", port: int = 0, tick_interval_s: float = 0.1
) -> ClusterServer:
    """Serve `cluster` over HTTP on `host:port` (0 = a free port) and tick its controller every
    `tick_interval_s` seconds (0 disables the background ticks: drive `cluster.tick()` yourself)."""
    return ClusterServer(cluster, host, port, tick_interval_s).start()
