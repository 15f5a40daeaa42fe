"""Drill history: one row per drill, in the incident store's database, so the MTTR trend is visible.

Usage::

    from runbook.drill_history import open_history
    from runbook.postmortem import HistoryRow

    with open_history(settings.store.url) as history:      # same SQLite file / PostgreSQL DSN as the store
        history.record(HistoryRow.of(result), report=result.model_dump_json())   # idempotent on drill_id
        rows = history.list(scenario="high-error-rate", limit=50)                 # newest first

Why a table of our own: the store (runbook/store.py) keeps incidents, alerts and actions and has no
place for drill figures; this table sits beside them under its own schema version
(`drill_schema_version`, component `history`), so neither migrates the other's tables (the intake's
outbox does the same). A newer schema than this code knows is refused. Times are epoch seconds.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook.errors import StoreFailed
from runbook.postmortem import HistoryRow

__all__ = ["SCHEMA_VERSION", "DrillHistory", "HistoryFailed", "open_history"]

SCHEMA_VERSION = 1

_FIELDS = (
    "drill_id",
    "scenario",
    "target",
    "environment",
    "via",
    "status",
    "allow_production",
    "started_at",
    "detect_s",
    "acknowledge_s",
    "mitigate_s",
    "recover_s",
    "mttr_s",
    "incident_id",
    "flow_run_id",
)
_COLUMNS = ", ".join(_FIELDS)


class HistoryFailed(StoreFailed):
    """The drill history could not be read or written."""


def _values(row: HistoryRow, report: str) -> tuple[Any, ...]:
    data = row.model_dump()
    data["started_at"] = row.started_at.timestamp()
    data["allow_production"] = int(row.allow_production)
    return (*(data[f] for f in _FIELDS), report)


def _row(values: tuple[Any, ...]) -> HistoryRow:
    data = dict(zip(_FIELDS, values, strict=True))
    data["started_at"] = datetime.fromtimestamp(float(data["started_at"]), UTC)
    data["allow_production"] = bool(data["allow_production"])
    return HistoryRow.model_validate(data)


class DrillHistory(ABC):
    """Drill rows; `SqliteHistory` and `PostgresHistory` implement one schema."""

    def __enter__(self) -> DrillHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def record(self, row: HistoryRow, report: str = "") -> None:
        """Insert the drill, or replace it if its `drill_id` is there (a re-run report)."""

    @abstractmethod
    def list(self, *, scenario: str | None = None, limit: int = 100) -> list[HistoryRow]:
        """Drills, newest first, optionally of one scenario."""

    @abstractmethod
    def report(self, drill_id: str) -> str | None:
        """The stored report (DrillResult JSON) of one drill, or None."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""


_SQLITE = f"""
CREATE TABLE IF NOT EXISTS drill_schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS drill_history (
    drill_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, target TEXT NOT NULL, environment TEXT NOT NULL,
    via TEXT NOT NULL, status TEXT NOT NULL, allow_production INTEGER NOT NULL, started_at REAL NOT NULL,
    detect_s REAL, acknowledge_s REAL, mitigate_s REAL, recover_s REAL, mttr_s REAL,
    incident_id TEXT, flow_run_id TEXT, report TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS drill_history_scenario ON drill_history (scenario, started_at);
INSERT OR IGNORE INTO drill_schema_version (component, version) VALUES ('history', {SCHEMA_VERSION});
"""


class SqliteHistory(DrillHistory):
    """The history in the store's SQLite file (WAL, busy timeout); one connection behind a lock."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript("BEGIN IMMEDIATE;" + _SQLITE + "COMMIT;")
            found = self._conn.execute(
                "SELECT version FROM drill_schema_version WHERE component = 'history'"
            ).fetchone()
        except sqlite3.Error as exc:
            raise HistoryFailed(f"drill history: cannot open SQLite {self.path}: {exc}") from exc
        _check_version(found)

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise HistoryFailed(f"drill history (SQLite {self.path}): {exc}") from exc

    def record(self, row: HistoryRow, report: str = "") -> None:
        marks = ", ".join("?" * (len(_FIELDS) + 1))
        with self._cursor() as c:
            c.execute(
                f"INSERT OR REPLACE INTO drill_history ({_COLUMNS}, report) VALUES ({marks})",
                _values(row, report),
            )

    def list(self, *, scenario: str | None = None, limit: int = 100) -> list[HistoryRow]:
        where, params = ("WHERE scenario = ?", (scenario,)) if scenario else ("", ())
        with self._cursor() as c:
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM drill_history {where} ORDER BY started_at DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_row(tuple(r)) for r in rows]

    def report(self, drill_id: str) -> str | None:
        with self._cursor() as c:
            found = c.execute("SELECT report FROM drill_history WHERE drill_id = ?", (drill_id,)).fetchone()
        return None if found is None else str(found[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_PG = (
    "CREATE TABLE IF NOT EXISTS drill_schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS drill_history (
        drill_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, target TEXT NOT NULL, environment TEXT NOT NULL,
        via TEXT NOT NULL, status TEXT NOT NULL, allow_production INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL, detect_s DOUBLE PRECISION, acknowledge_s DOUBLE PRECISION,
        mitigate_s DOUBLE PRECISION, recover_s DOUBLE PRECISION, mttr_s DOUBLE PRECISION,
        incident_id TEXT, flow_run_id TEXT, report TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS drill_history_scenario ON drill_history (scenario, started_at)",
    f"INSERT INTO drill_schema_version (component, version) VALUES ('history', {SCHEMA_VERSION}) "
    "ON CONFLICT (component) DO NOTHING",
)


class PostgresHistory(DrillHistory):
    """The history in the store's PostgreSQL database (psycopg 3; a connection per call: drills are rare)."""

    def __init__(self, dsn: str, *, connect_timeout_s: float = 5.0) -> None:
        import psycopg

        self._psycopg = psycopg
        self._dsn = dsn
        self._timeout = max(1, int(connect_timeout_s))
        with self._cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(7312007)")  # one migrator at a time
            for statement in _PG:
                cur.execute(statement)
            cur.execute("SELECT version FROM drill_schema_version WHERE component = 'history'")
            found = cur.fetchone()
        _check_version(found)

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        try:
            with (
                self._psycopg.connect(self._dsn, connect_timeout=self._timeout) as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                yield cur
        except self._psycopg.Error as exc:
            raise HistoryFailed(f"drill history (PostgreSQL): {type(exc).__name__}: {exc}") from exc

    def record(self, row: HistoryRow, report: str = "") -> None:
        marks = ", ".join(["%s"] * (len(_FIELDS) + 1))
        updates = ", ".join(f"{f} = EXCLUDED.{f}" for f in (*_FIELDS[1:], "report"))
        with self._cursor() as cur:
            cur.execute(
                f"INSERT INTO drill_history ({_COLUMNS}, report) VALUES ({marks}) "
                f"ON CONFLICT (drill_id) DO UPDATE SET {updates}",
                _values(row, report),
            )

    def list(self, *, scenario: str | None = None, limit: int = 100) -> list[HistoryRow]:
        where, params = ("WHERE scenario = %s", (scenario,)) if scenario else ("", ())
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {_COLUMNS} FROM drill_history {where} ORDER BY started_at DESC LIMIT %s",
                (*params, limit),
            )
            rows = cur.fetchall()
        return [_row(tuple(r)) for r in rows]

    def report(self, drill_id: str) -> str | None:
        with self._cursor() as cur:
            cur.execute("SELECT report FROM drill_history WHERE drill_id = %s", (drill_id,))
            found = cur.fetchone()
        return None if found is None else str(found[0])

    def close(self) -> None:
        """Nothing held between calls."""


def _check_version(found: Any) -> None:
    if found is None:
        raise HistoryFailed(
            "drill history: no schema version row (drill_schema_version, component 'history')"
        )
    if int(found[0]) > SCHEMA_VERSION:
        raise HistoryFailed(
            f"drill history schema version {found[0]} is newer than this code ({SCHEMA_VERSION})"
        )


def open_history(url: str) -> DrillHistory:
    """The drill history beside the store at `url` (`sqlite:///path` or `postgresql://...`)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresHistory(url)
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return SqliteHistory(url[len("sqlite:///") :])
    raise HistoryFailed(
        f"drill history: unsupported store URL (use sqlite:///path or postgresql://...): {url[:9]}..."
    )
