"""Intake fixtures: a real store (SQLite file) with the intake's outbox beside it, the app, a live server.

- `intake_config`: tokens for every source, a Sentry client secret, a 64 KiB body limit.
- `store_url`, `store`, `outbox`: `runbook.store` and `intake.outbox` on one fresh SQLite file.
- `app` / `client`: the ASGI app (no dispatcher) served by uvicorn on 127.0.0.1:<free port>, and an httpx
  client on it (real HTTP over loopback, as Alertmanager or Sentry would send it).
- `serve(app)`: uvicorn on 127.0.0.1:<free port> in a thread; yields the base URL; stopped after.
- `intake_process(tmp_path, store_url, name)`: `python -m intake --no-dispatch` as its own process, on a
  free port (read from uvicorn's log line); yields `(Popen, base URL)`; killed after. Settings from the
  environment: the store URL and tokens for alertmanager and generic.
- `prefect_api`: one Prefect test server for the session (`prefect_test_harness`, ~8-12 s to start) with a
  `respond/respond` deployment registered; runs are created on it, never executed (no worker).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from intake.app import create_app
from intake.config import IntakeConfig
from intake.ingest import StoreIngestor
from intake.outbox import Outbox, open_outbox
from sandbox.testing import wait_for

TOKENS = {"alertmanager": "am-token", "grafana": "gf-token", "generic": "gen-token"}
SENTRY_SECRET = "sentry-client-secret"
DATA = Path(__file__).resolve().parents[1] / "data"
LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


@pytest.fixture
def intake_config() -> IntakeConfig:
    return IntakeConfig(
        tokens={k: SecretStr(v) for k, v in TOKENS.items()},
        sentry_client_secret=SecretStr(SENTRY_SECRET),
        max_body_bytes=64 * 1024,
        sentry_projects={"emotionscare-web": "emotionscare"},
    )


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'incidents.sqlite3'}"


@pytest.fixture
def store(store_url: str) -> Iterator[Any]:
    from runbook.store import open_store

    s = open_store(store_url)
    try:
        yield s
    finally:
        close = getattr(s, "close", None)
        if callable(close):
            close()


@pytest.fixture
def outbox(store: Any, store_url: str) -> Iterator[Outbox]:
    box = open_outbox(store_url)
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
def app(intake_config: IntakeConfig, store: Any, outbox: Outbox) -> Starlette:
    return create_app(intake_config, StoreIngestor(store, outbox, intake_config))


@contextmanager
def _serve(app: Starlette) -> Iterator[str]:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", backlog=2048)
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: server.started, 10.0), "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def serve() -> Callable[[Starlette], AbstractContextManager[str]]:
    return _serve


@contextmanager
def _intake_process(
    tmp_path: Path, store_url: str, name: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    log_path = tmp_path / f"{name}.log"
    env = {
        **os.environ,
        "RUNBOOK_STORE_URL": store_url,
        "RUNBOOK_INTAKE_TOKENS": json.dumps({"alertmanager": "am-token", "generic": "gen-token"}),
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "intake", "--host", "127.0.0.1", "--port", "0", "--no-dispatch"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        found: list[str] = []

        def listening() -> bool:
            match = LISTENING.search(log_path.read_text(errors="replace"))
            if match:
                found.append(match.group(1))
            return bool(match) or proc.poll() is not None

        assert wait_for(listening, 30.0, 0.05) and found, log_path.read_text(errors="replace")
        yield proc, found[0]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.fixture
def intake_process() -> Callable[
    [Path, str, str], AbstractContextManager[tuple[subprocess.Popen[bytes], str]]
]:
    return _intake_process


@pytest.fixture
def client(app: Starlette) -> Iterator[httpx.Client]:
    with _serve(app) as url, httpx.Client(base_url=url, timeout=30.0) as c:
        yield c


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    from prefect import flow
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    @flow(name="respond")
    def respond(incident_id: str) -> None:
        """Stands for flows/respond.py: the dispatch tests only create its runs."""

    with prefect_test_harness(server_startup_timeout=60):
        deployment: Any = respond.to_deployment(name="respond")  # sync here; typed as maybe-awaitable
        deployment.apply()
        url = PREFECT_API_URL.value()
        assert url
        yield str(url)
