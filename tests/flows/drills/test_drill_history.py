"""runbook/drill_history.py: drill rows beside the store, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runbook.drill_history import HistoryFailed, open_history
from runbook.errors import StoreFailed
from runbook.postmortem import HistoryRow
from runbook.store import open_store

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def row(i: int, scenario: str = "high-error-rate", **kw) -> HistoryRow:
    base = dict(
        drill_id=f"d{i}",
        scenario=scenario,
        target="sandbox",
        environment="sandbox",
        via="runbook",
        status="passed",
        started_at=T0 + timedelta(days=30 * i),
        detect_s=1.5,
        acknowledge_s=2.0,
        mitigate_s=9.25,
        recover_s=12.0,
        mttr_s=13.5,
        incident_id=f"inc{i}",
        flow_run_id=None,
    )
    return HistoryRow(**{**base, **kw})


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/incidents.sqlite3"
    return request.getfixturevalue("pg_dsn")


def test_record_list_and_replace(url: str) -> None:
    with open_history(url) as h:
        h.record(row(0), report='{"x": 0}')
        h.record(row(1, "database-failure", allow_production=True, target="prod", environment="production"))
        h.record(row(2))
        h.record(row(2, status="failed", mttr_s=None), report='{"x": 2}')  # re-recorded: replaced
        rows = h.list()
        assert [r.drill_id for r in rows] == ["d2", "d1", "d0"]
        assert rows[0].status == "failed" and rows[0].mttr_s is None
        assert rows[1].allow_production is True and rows[1].environment == "production"
        assert rows[2] == row(0)
        assert [r.drill_id for r in h.list(scenario="high-error-rate", limit=1)] == ["d2"]
        assert h.report("d2") == '{"x": 2}' and h.report("nope") is None


def test_lives_beside_the_incident_store(url: str) -> None:
    with open_store(url) as store:
        version = store.schema_version()
    with open_history(url) as h:
        h.record(row(0))
    with open_store(url) as store, open_history(url) as h:  # neither migrates the other
        assert store.schema_version() == version
        assert [r.drill_id for r in h.list()] == ["d0"]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    open_history(url).close()
    with sqlite3.connect(tmp_path / "h.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(StoreFailed, match="revision 0099, newer than this code"):
        open_history(url)


def test_an_unsupported_url_is_named() -> None:
    with pytest.raises(HistoryFailed, match="unsupported store URL"):
        open_history("mysql://x")
