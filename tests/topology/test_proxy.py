"""bench/scale/proxy.py: connections spread over the API processes; one that refuses is skipped."""

from __future__ import annotations

import gc
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from bench.scale.proxy import RoundRobinProxy
from sandbox.ports import free_port
from sandbox.testing import wait_for


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = str(self.server.server_address[1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def backends() -> Iterator[list[int]]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Hello) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [s.server_address[1] for s in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_round_robin_over_live_backends_and_a_dead_one_skipped(backends: list[int]) -> None:
    dead = free_port()  # nothing listens there: a killed API process
    with RoundRobinProxy([("127.0.0.1", p) for p in [*backends, dead]]) as proxy:
        seen = []
        for _ in range(6):  # a new connection each time, as a fresh client would open
            with httpx.Client() as client:
                answer = client.get(f"http://127.0.0.1:{proxy.port}/api/health", timeout=5)
            assert answer.status_code == 200
            seen.append(int(answer.text))
        assert set(seen) == set(backends)
        assert proxy.refused >= 1 and proxy.connections == 6


def test_connections_open_at_exit_are_closed_inside_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client still connected when the proxy stops: its pipes are cancelled and closed before the loop
    closes, not left to the garbage collector ("Event loop is closed" in an unraisable exception, which
    failed a whole pytest session at exit)."""
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with socket.create_server(("127.0.0.1", 0)) as backend:  # accepts (the kernel's backlog), never answers
        with RoundRobinProxy([("127.0.0.1", backend.getsockname()[1])]) as proxy:
            held = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            held.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_for(lambda: proxy.connections == 1, timeout_s=10, interval_s=0.01)  # the proxy took it
        held.close()
    gc.collect()
    assert unraisable == []
