"""Drill fixtures: the runbooks' settings pointed at a fresh store, and a fault-control API stand-in.

- `drill_env(**env)`: sets `RUNBOOK_*` variables (a fresh SQLite store, Slack unset, the service on a
  closed loopback port unless told otherwise) and resets `tasks.runtime`, restored after the test.
- `drill_world`: a fresh sandbox world (sandbox/world.py) for one test, settings pointed at it.
- `world_target`: that world registered as the drill target "sandbox" (in-process).
- `control_api`: an HTTP fault-control API on 127.0.0.1 speaking sandbox/control.py's
  protocol (what `ControlApiTarget` sends), recording every request (to prove a refused drill sends none).
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
    faults: dict[str, Any] = {}

    def listing() -> list[str]:
        return [" ".join([name, *(f"{k}={v}" for k, v in args.items())]) for name, args in faults.items()]

    def inject(request: Request) -> Response:
        faults[request.params["name"]] = request.json() if request.raw_body else {}
        return Response.json({"fault": request.params["name"], "message": "injected"})

    def lift(request: Request) -> Response:
        faults.pop(request.params["name"], None)
        return Response.json({"fault": request.params["name"], "message": "lifted"})

    def clear(_request: Request) -> Response:
        faults.clear()
        return Response.json({"message": "cleared"})

    server = HttpServer(name="control")
    server.route("POST", "/faults/{name}", inject)
    server.route("DELETE", "/faults/{name}", lift)
    server.route("POST", "/clear", clear)
    server.route("GET", "/faults", lambda _r: Response.json({"faults": [], "active": listing()}))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def drill_world(pg_server: Any) -> Iterator[Any]:
    """A fresh sandbox world for one test (its own database on the session's PostgreSQL), the runbooks'
    settings pointed at it."""
    from sandbox.testing import running_world

    with running_world(postgres=pg_server) as world:
        yield world


@pytest.fixture
def world_target(drill_world: Any) -> Iterator[Any]:
    from tasks.drill_targets import WorldTarget, register_target

    unregister = register_target(WorldTarget(drill_world))
    try:
        yield drill_world
    finally:
        unregister()
