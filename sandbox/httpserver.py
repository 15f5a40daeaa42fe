"""A small threaded HTTP server for the sandbox's stand-ins and the service under care.

Usage::

    server = HttpServer(name="slack")
    server.route("POST", "/api/chat.postMessage", handler)       # handler(Request) -> Response
    server.route("GET", "/api/0/issues/{issue_id}/events/latest/", latest)  # request.params["issue_id"]
    server.start()                      # 127.0.0.1, a free port
    httpx.post(server.url + "/api/chat.postMessage", json={...})
    server.requests                     # every request received, in order (RecordedRequest)
    server.close_listener()             # the port refuses connections (a real ECONNREFUSED)...
    server.reopen_listener()            # ...and comes back on the same port
    server.inject(count=2, response=Response.json({"ok": False}, status=500))   # next 2 requests fail
    server.inject(count=1, delay_s=5.0) # next request answers after 5 s (a client timeout)
    server.stop()                       # listener closed, in-flight requests woken, threads joined

Handlers raise `HttpError(status, body)` for a 4xx/5xx answer with a JSON body. Every response says
`Connection: close`, so clients never hold a pooled connection: once the listener closes, the next
request is refused, as it would be by a process that is gone. Injected delays wait on an event that
`stop()` and `close_listener()` set, so no handler thread outlives its server.

The server's life cycle (listen, close and reopen the listener, injected delays and failures, a
stop that leaves no thread behind) is one state machine, and its parts share its lock and listener;
the socket side (listener, request handler) is sandbox/http_listener.py, the messages it serves are
sandbox/http_messages.py.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.http_listener import Listener
from sandbox.http_messages import HttpError, RecordedRequest, Request, Response, parse_body
from sandbox.ports import candidate_ports

__all__ = [
    "Handler",
    "HttpError",
    "HttpServer",
    "RecordedRequest",
    "Request",
    "Response",
    "StandIn",
    "parse_body",
]


Handler = Callable[[Request], Response]


@dataclass
class _Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


@dataclass
class _Injection:
    remaining: int
    response: Response | None
    delay_s: float
    matches: Callable[[Request], bool] | None


def _compile(pattern: str) -> re.Pattern[str]:
    """`/api/0/issues/{issue_id}/` → a regex with a named group; a trailing slash is optional."""
    out = []
    for part in re.split(r"(\{[a-zA-Z_][a-zA-Z0-9_]*\})", pattern.rstrip("/")):
        if part.startswith("{") and part.endswith("}"):
            out.append(f"(?P<{part[1:-1]}>[^/]+)")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "/?$")


class HttpServer:
    """A route table served by `ThreadingHTTPServer` on loopback, recording every request."""

    def __init__(self, name: str = "http") -> None:
        self.name = name
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._injections: list[_Injection] = []
        self._connections: set[socket.socket] = set()
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._host = "127.0.0.1"
        self._port = 0
        self._stopped = False
        self.delay_s: float = 0.0
        """Every request waits this long before it is handled (a slow service)."""
        self.fault: Callable[[Request], Response | None] | None = None
        """Called before routing; a Response it returns is answered instead of the route's."""
        self.errors: list[Exception] = []
        """Exceptions raised by handlers (each answered as a 500)."""

    # -- routes -------------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve `method pattern` with `handler`; `{name}` segments land in `request.params`."""
        self._routes.append(_Route(method.upper(), pattern, _compile(pattern), handler))

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> HttpServer:
        """Listen on `host:port` (0: a free port) and serve in a daemon thread. Returns self."""
        if self._listener is not None:
            raise RuntimeError(f"{self.name} server already started on {self.url}")
        self._host = host
        self._port = port
        self._stopped = False
        self._open()
        return self

    def stop(self) -> None:
        """Close the listener, wake delayed handlers, drop open connections. Idempotent."""
        self._stopped = True
        self._close()

    def close_listener(self) -> None:
        """Stop listening: new connections are refused (ECONNREFUSED) until `reopen_listener()`."""
        if self._listener is None:
            raise RuntimeError(f"{self.name} server is not listening")
        self._close()

    def reopen_listener(self) -> None:
        """Listen again on the same host and port as before."""
        if self._listener is not None:
            return
        if not self._port:
            raise RuntimeError(f"{self.name} server was never started")
        if self._stopped:
            raise RuntimeError(f"{self.name} server was stopped; start() it again")
        self._open()

    @property
    def listening(self) -> bool:
        return self._listener is not None

    @property
    def stopped(self) -> bool:
        """True after `stop()` (until `start()`); a closed listener alone is not stopped."""
        return self._stopped

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError(f"{self.name} server was never started")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT` (no trailing slash)."""
        return f"http://{self._host}:{self.port}"

    def __enter__(self) -> HttpServer:
        if self._listener is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _open(self) -> None:
        # A port the server may give up and take back (close_listener/reopen_listener) is chosen below
        # the kernel's ephemeral range, where no outgoing connection can take it meanwhile (ports.py).
        ports = [self._port] if self._port else candidate_ports()
        listener: Listener | None = None
        for port in ports:
            try:
                listener = Listener((self._host, port), self)
                break
            except OSError as exc:
                if self._port:
                    raise RuntimeError(
                        f"{self.name} server cannot listen on {self._host}:{self._port}: {exc}"
                    ) from exc
        if listener is None:
            raise RuntimeError(f"{self.name} server found no free port on {self._host}")
        self._port = int(listener.server_address[1])
        self._wake = threading.Event()
        thread = threading.Thread(
            target=listener.serve,
            name=f"{self.name}-http-{self._port}",
            daemon=True,
        )
        self._listener = listener
        self._thread = thread
        thread.start()

    def _close(self) -> None:
        listener, thread = self._listener, self._thread
        self._listener, self._thread = None, None
        self._wake.set()
        if listener is None:
            return
        listener.wake()
        if thread is not None:
            thread.join(timeout=5)
        listener.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue  # already closed by its handler

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- recording and faults ----------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests whose path is `path` (and method, if given)."""
        return [
            r
            for r in self.requests
            if r.path.rstrip("/") == path.rstrip("/") and (method is None or r.method == method.upper())
        ]

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def inject(
        self,
        count: int = 1,
        response: Response | None = None,
        delay_s: float = 0.0,
        matches: Callable[[Request], bool] | None = None,
    ) -> None:
        """The next `count` requests (that `matches`) wait `delay_s`, then get `response` if given."""
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._injections.append(_Injection(count, response, delay_s, matches))

    def clear_injections(self) -> None:
        with self._lock:
            self._injections.clear()
        self.delay_s = 0.0
        self.fault = None

    def pending_injections(self) -> int:
        with self._lock:
            return sum(i.remaining for i in self._injections)

    def _take_injection(self, request: Request) -> _Injection | None:
        with self._lock:
            for injection in self._injections:
                if injection.matches is None or injection.matches(request):
                    injection.remaining -= 1
                    if injection.remaining <= 0:
                        self._injections.remove(injection)
                    return injection
        return None

    def _wait(self, delay_s: float) -> bool:
        """Wait `delay_s`; False when the server stopped meanwhile (answer nothing)."""
        if delay_s <= 0:
            return True
        return not self._wake.wait(delay_s)

    def _dispatch(self, request: Request) -> Response | None:
        with self._lock:
            self._requests.append(
                RecordedRequest.of(
                    request.method, request.path, request.query, request.headers, request.raw_body
                )
            )
        if not self._wait(self.delay_s):
            return None
        injection = self._take_injection(request)
        if injection is not None:
            if not self._wait(injection.delay_s):
                return None
            if injection.response is not None:
                return injection.response
        fault = self.fault
        if fault is not None:
            faulted = fault(request)
            if faulted is not None:
                return faulted
        return self._route(request)

    def _route(self, request: Request) -> Response:
        allowed: list[str] = []
        for route in self._routes:
            match = route.regex.match(request.path)
            if match is None:
                continue
            if route.method != request.method and not (route.method == "GET" and request.method == "HEAD"):
                allowed.append(route.method)
                continue
            bound = Request(
                method=request.method,
                path=request.path,
                query=request.query,
                headers=request.headers,
                raw_body=request.raw_body,
                params=match.groupdict(),
            )
            try:
                return route.handler(bound)
            except HttpError as exc:
                return exc.response()
            except Exception as exc:  # a handler bug: answered as a 500 and kept for the test to see
                with self._lock:
                    self.errors.append(exc)
                return Response.json({"error": "internal_error", "detail": repr(exc)}, status=500)
        if allowed:
            return Response.json(
                {"error": "method_not_allowed", "allowed": sorted(set(allowed))},
                status=405,
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        return Response.json({"error": "not_found", "path": request.path}, status=404)


class StandIn:
    """Base of the sandbox's stand-ins for real services (Slack, PagerDuty, Sentry, external APIs).

    Usage::

        slack = SlackStandIn(token="xoxb-...").start()    # start() returns self
        slack.url, slack.requests                          # base URL; what it received, in order
        slack.reset()                                      # forget requests, injected faults and state
        slack.stop()

    A subclass registers its routes on `self.server` in `__init__` and clears its own state in
    `_reset_state()`.
    """

    name = "stand-in"

    def __init__(self) -> None:
        self.server = HttpServer(name=self.name)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Any:
        """Listen on `host:port` (0: a free port). Returns self."""
        self.server.start(host, port)
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests

    def reset(self) -> None:
        """Back to the state right after construction: no requests, no faults, no data."""
        self.server.reset_requests()
        self.server.clear_injections()
        self._reset_state()

    def _reset_state(self) -> None:
        return None

    def __enter__(self) -> Any:
        if not self.server.listening:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
