"""Drill fixtures: the runbooks' settings pointed at a fresh store, and a fault-control API stand-in.

- `drill_env(**env)`: sets `RUNBOOK_*` variables (a fresh SQLite store, Slack unset, the service on a
  closed loopback port unless told otherwise) and resets `tasks.runtime`, restored after the test.
- `control_api`: an HTTP fault-control API on 127.0.0.1 speaking tasks/drill_targets.py's
  `ControlApiTarget` protocol, recording every request (to prove a refused drill sends none).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.httpserver import HttpServer, Request, Response
from tasks import runtime


def closed_port_url() -> str:
    """http://127.0.0.1:<a port nobody listens on> (connection refused, no internet involved)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def drill_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., str]]:
    def apply(**env: str) -> str:
        base = {
            "RUNBOOK_ENVIRONMENT": "sandbox",
            "RUNBOOK_STORE_URL": f"sqlite:///{tmp_path}/incidents.sqlite3",
            "RUNBOOK_SERVICE_BASE_URL": closed_port_url(),
            "RUNBOOK_SERVICE_HTTP_TIMEOUT_S": "1",
        }
        for key, value in {**base, **env}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("RUNBOOK_SLACK_TOKEN", raising=False)
        runtime.reset()
        return base["RUNBOOK_STORE_URL"] if "RUNBOOK_STORE_URL" not in env else env["RUNBOOK_STORE_URL"]

    yield apply
    runtime.reset()


@pytest.fixture
def control_api() -> Iterator[HttpServer]:
    active: list[str] = []

    def inject(request: Request) -> Response:
        body: dict[str, Any] = request.json()
        active.append(" ".join(x for x in (body["name"], body.get("arg")) if x))
        return Response.json({"active": active})

    def clear(_request: Request) -> Response:
        active.clear()
        return Response.json({"active": active})

    server = HttpServer(name="control")
    server.route("POST", "/faults", inject)
    server.route("POST", "/faults/clear", clear)
    server.route("GET", "/faults", lambda _r: Response.json({"active": active}))
    server.start()
    try:
        yield server
    finally:
        server.stop()
