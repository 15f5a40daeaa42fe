"""A TCP gate in front of a server the world does not own (the test's Prefect server): it forwards
bytes both ways until told to refuse, hang or answer 503.

Usage::

    gate = Gate("http://127.0.0.1:4200").start()      # gate.url: same path, the gate's port
    gate.set_mode("5xx")        # every new connection: `503 Service Unavailable`, open ones cut
    gate.set_mode("refuse")     # the port refuses connections (ECONNREFUSED), open ones cut
    gate.set_mode("timeout")    # connections accepted, nothing answered until the mode changes
    gate.set_mode("open")       # forwarding again, on the same port
    gate.stop()

Why hand-written: the standard library has no TCP forwarder, and the gate must carry websockets (the
Prefect client's events) as well as HTTP, so it forwards bytes, not requests.
"""

from __future__ import annotations

import socket
import threading
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Gate", "GateMode"]

GateMode = Literal["open", "refuse", "timeout", "5xx"]

_BODY = b'{"detail": "unavailable (sandbox fault)"}'
_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + _BODY
)


class Gate:
    """See the module docstring. Thread-safe; every thread it starts ends on `stop()`."""

    def __init__(self, upstream: str, host: str = "127.0.0.1") -> None:
        parts = urlsplit(upstream)
        if not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port[/path] (got {upstream!r})")
        self._upstream = upstream
        self._target = (parts.hostname, parts.port)
        self._host = host
        self._port = 0
        self.mode: GateMode = "open"
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._changed = threading.Event()
        self._stopped = False

    @property
    def url(self) -> str:
        parts = urlsplit(self._upstream)
        return urlunsplit((parts.scheme, f"{self._host}:{self._port}", parts.path, "", ""))

    def start(self) -> Gate:
        self._listen()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._changed.set()
        self._close_listener()
        self._cut()

    def set_mode(self, mode: GateMode) -> None:
        """Change what the gate does; connections open now are cut (a client sees its API go away)."""
        if mode not in ("open", "refuse", "timeout", "5xx"):
            raise ValueError(f"mode must be open, refuse, timeout or 5xx (got {mode!r})")
        with self._lock:
            self.mode = mode
            waking, self._changed = self._changed, threading.Event()
        waking.set()
        self._cut()
        if mode == "refuse":
            self._close_listener()
        elif self._listener is None and not self._stopped:
            self._listen()

    # -- the listener ---------------------------------------------------------------------------------
    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        sock.listen(64)
        self._port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), name="gate-accept", daemon=True).start()

    def _close_listener(self) -> None:
        sock, self._listener = self._listener, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected: closing is enough
            sock.close()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # the listener closed
            self._track(conn, True)
            threading.Thread(target=self._serve, args=(conn,), name="gate-conn", daemon=True).start()

    # -- one connection -------------------------------------------------------------------------------
    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            mode, changed = self.mode, self._changed
        try:
            if mode == "5xx":
                conn.settimeout(5)
                conn.recv(65536)
                conn.sendall(_UNAVAILABLE)
            elif mode == "timeout":
                changed.wait()
            elif mode == "open":
                self._forward(conn)
        except OSError:
            pass  # the client or the upstream went away: the connection simply ends
        finally:
            self._track(conn, False)
            conn.close()

    def _forward(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(self._target, timeout=10)
        upstream.settimeout(None)
        self._track(upstream, True)
        try:
            pump = threading.Thread(target=_pump, args=(upstream, conn), name="gate-pump", daemon=True)
            pump.start()
            _pump(conn, upstream)
            pump.join(timeout=10)
        finally:
            self._track(upstream, False)
            upstream.close()

    def _track(self, sock: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._conns.add(sock)
            else:
                self._conns.discard(sock)

    def _cut(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy `src` to `dst` until either side closes; then half-close `dst`."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass  # cut or reset: the copy ends
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # already gone
