"""The dispatch outbox: incidents waiting for their `respond` flow run, in the store's own database.

Usage::

    outbox = open_outbox(store_url)            # same SQLite file / PostgreSQL DSN as runbook.store
    outbox.enqueue(incident.id, "respond/respond")          # idempotent: once per incident
    for item in outbox.claim(owner="intake-1", lease_s=60, limit=20):
        ...                                                 # start the run, then:
        outbox.complete(item.incident_id, run_id)    # or outbox.fail(item.incident_id, error, retry_at)
    outbox.close()

Why a table of our own: "acknowledged means dispatched eventually". The intake writes the outbox row
before it answers 202 (after the incident row); the dispatcher works from it, whatever crashed in
between, on whichever replica. One row per incident (`incident_id` is the primary key), so a storm of
alerts for one incident is one row. A claim is a lease (`lease_owner`, `lease_until`): a replica that
dies mid-dispatch loses its lease and another one takes the row over; the Prefect idempotency key
makes a repeated creation return the same run. PostgreSQL claims with
`FOR UPDATE SKIP LOCKED`; SQLite with `BEGIN IMMEDIATE` (one writer at a time).

The schema is versioned in `intake_schema_version` (component `outbox`), separate from the store's
`schema_version`, so neither package migrates the other's tables. Times are epoch seconds (float).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intake.errors import IntakeError

__all__ = ["SCHEMA_VERSION", "Outbox", "OutboxFailed", "OutboxItem", "open_outbox", "sqlite_path"]

SCHEMA_VERSION = 1

_COLUMNS = (
    "incident_id, deployment, enqueued_at, attempts, next_attempt_at, lease_owner, lease_until, "
    "flow_run_id, dispatched_at, last_error"
)


class OutboxFailed(IntakeError):
    """The outbox database could not complete an operation."""


@dataclass(frozen=True)
class OutboxItem:
    """One incident waiting for (or done with) its flow run."""

    incident_id: str
    deployment: str
    enqueued_at: float
    attempts: int
    next_attempt_at: float
    lease_owner: str | None
    lease_until: float | None
    flow_run_id: str | None
    dispatched_at: float | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> OutboxItem:
        return cls(*row)


class Outbox(ABC):
    """The operations; `SqliteOutbox` and `PostgresOutbox` implement them on one schema."""

    clock: Callable[[], float] = time.time

    @abstractmethod
    def enqueue(self, incident_id: str, deployment: str) -> bool:
        """Add the incident if it is not there yet; True if this call added it."""

    @abstractmethod
    def claim(self, owner: str, lease_s: float, limit: int) -> list[OutboxItem]:
        """Lease up to `limit` due, undispatched rows to `owner` for `lease_s` seconds (oldest due first)."""

    @abstractmethod
    def complete(self, incident_id: str, flow_run_id: str) -> None:
        """Record the flow run; the row is done."""

    @abstractmethod
    def fail(self, incident_id: str, error: str, retry_at: float) -> int:
        """Record a failed attempt, release the lease, retry not before `retry_at`; the attempt count."""

    @abstractmethod
    def get(self, incident_id: str) -> OutboxItem | None:
        """The row of one incident."""

    @abstractmethod
    def depth(self) -> int:
        """How many incidents still wait for their flow run."""

    @abstractmethod
    def next_due_at(self) -> float | None:
        """Earliest `next_attempt_at` of an undispatched row (None: nothing waits)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise `OutboxFailed` if the database does not answer."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


# --- SQLite --------------------------------------------------------------------------------------------

_SQLITE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS intake_schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS intake_outbox (
    incident_id TEXT PRIMARY KEY,
    deployment TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    flow_run_id TEXT,
    dispatched_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS intake_outbox_due ON intake_outbox (dispatched_at, next_attempt_at);
INSERT OR IGNORE INTO intake_schema_version (component, version) VALUES ('outbox', {SCHEMA_VERSION});
"""


class SqliteOutbox(Outbox):
    """The outbox in a SQLite file (WAL, busy timeout); one connection guarded by a lock."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            with self._tx():
                self._conn.executescript("BEGIN IMMEDIATE;" + _SQLITE_SCHEMA + "COMMIT;")
            self._check_version()
        except sqlite3.Error as exc:
            raise OutboxFailed(f"outbox: cannot open SQLite {self.path}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise OutboxFailed(f"outbox (SQLite {self.path}): {exc}") from exc

    def _check_version(self) -> None:
        with self._tx() as c:
            row = c.execute("SELECT version FROM intake_schema_version WHERE component = 'outbox'").fetchone()
        if row is None or int(row[0]) > SCHEMA_VERSION:
            raise OutboxFailed(
                f"outbox schema version {row and row[0]} is newer than this code ({SCHEMA_VERSION})"
            )

    def enqueue(self, incident_id: str, deployment: str) -> bool:
        now = self.clock()
        with self._tx() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO intake_outbox (incident_id, deployment, enqueued_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?)",
                (incident_id, deployment, now, now),
            )
            return cur.rowcount == 1

    def claim(self, owner: str, lease_s: float, limit: int) -> list[OutboxItem]:
        now = self.clock()
        with self._tx() as c:
            c.execute("BEGIN IMMEDIATE")
            rows = c.execute(
                f"UPDATE intake_outbox SET lease_owner = ?, lease_until = ? WHERE incident_id IN ("
                " SELECT incident_id FROM intake_outbox WHERE dispatched_at IS NULL AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at LIMIT ?)"
                f" RETURNING {_COLUMNS}",
                (owner, now + lease_s, now, now, limit),
            ).fetchall()
            c.execute("COMMIT")
        return sorted((OutboxItem.from_row(r) for r in rows), key=lambda i: i.next_attempt_at)

    def complete(self, incident_id: str, flow_run_id: str) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE intake_outbox SET flow_run_id = ?, dispatched_at = ?, lease_owner = NULL, "
                "lease_until = NULL, last_error = NULL WHERE incident_id = ?",
                (flow_run_id, self.clock(), incident_id),
            )

    def fail(self, incident_id: str, error: str, retry_at: float) -> int:
        with self._tx() as c:
            row = c.execute(
                "UPDATE intake_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
                "lease_owner = NULL, lease_until = NULL WHERE incident_id = ? RETURNING attempts",
                (error[:2000], retry_at, incident_id),
            ).fetchone()
        return int(row[0]) if row else 0

    def get(self, incident_id: str) -> OutboxItem | None:
        with self._tx() as c:
            row = c.execute(
                f"SELECT {_COLUMNS} FROM intake_outbox WHERE incident_id = ?", (incident_id,)
            ).fetchone()
        return OutboxItem.from_row(row) if row else None

    def depth(self) -> int:
        with self._tx() as c:
            row = c.execute("SELECT count(*) FROM intake_outbox WHERE dispatched_at IS NULL").fetchone()
        return int(row[0])

    def next_due_at(self) -> float | None:
        with self._tx() as c:
            row = c.execute(
                "SELECT min(next_attempt_at) FROM intake_outbox WHERE dispatched_at IS NULL"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def ping(self) -> None:
        with self._tx() as c:
            c.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# --- PostgreSQL ----------------------------------------------------------------------------------------

_PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS intake_schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS intake_outbox (
        incident_id TEXT PRIMARY KEY,
        deployment TEXT NOT NULL,
        enqueued_at DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        lease_owner TEXT,
        lease_until DOUBLE PRECISION,
        flow_run_id TEXT,
        dispatched_at DOUBLE PRECISION,
        last_error TEXT)""",
    "CREATE INDEX IF NOT EXISTS intake_outbox_due ON intake_outbox (dispatched_at, next_attempt_at)",
    f"INSERT INTO intake_schema_version (component, version) VALUES ('outbox', {SCHEMA_VERSION}) "
    "ON CONFLICT (component) DO NOTHING",
)


class PostgresOutbox(Outbox):
    """The outbox in PostgreSQL (psycopg 3, a small connection pool)."""

    def __init__(self, dsn: str, *, connect_timeout_s: float = 5.0, max_connections: int = 4) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self._psycopg = psycopg
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            kwargs={"connect_timeout": max(1, int(connect_timeout_s)), "autocommit": False},
            timeout=connect_timeout_s,
            open=False,
            name="intake-outbox",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
            with self._tx() as cur:
                # one migrator at a time across replicas
                cur.execute("SELECT pg_advisory_xact_lock(7312001)")
                for statement in _PG_SCHEMA:
                    cur.execute(statement)
            with self._tx() as cur:
                cur.execute("SELECT version FROM intake_schema_version WHERE component = 'outbox'")
                row = cur.fetchone()
        except OutboxFailed:
            self._pool.close()
            raise
        except Exception as exc:
            self._pool.close()
            raise OutboxFailed(f"outbox: cannot open PostgreSQL: {type(exc).__name__}: {exc}") from exc
        if row is None or int(row[0]) > SCHEMA_VERSION:
            self._pool.close()
            raise OutboxFailed(
                f"outbox schema version {row and row[0]} is newer than this code ({SCHEMA_VERSION})"
            )

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except self._psycopg.Error as exc:
            raise OutboxFailed(f"outbox (PostgreSQL): {type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:  # psycopg_pool.PoolTimeout
            raise OutboxFailed(f"outbox (PostgreSQL): no connection: {exc}") from exc

    def enqueue(self, incident_id: str, deployment: str) -> bool:
        now = self.clock()
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO intake_outbox (incident_id, deployment, enqueued_at, next_attempt_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (incident_id) DO NOTHING",
                (incident_id, deployment, now, now),
            )
            return bool(cur.rowcount == 1)

    def claim(self, owner: str, lease_s: float, limit: int) -> list[OutboxItem]:
        now = self.clock()
        with self._tx() as cur:
            cur.execute(
                "UPDATE intake_outbox SET lease_owner = %s, lease_until = %s WHERE incident_id IN ("
                " SELECT incident_id FROM intake_outbox WHERE dispatched_at IS NULL AND next_attempt_at <= %s"
                " AND (lease_until IS NULL OR lease_until < %s) ORDER BY next_attempt_at LIMIT %s"
                f" FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
                (owner, now + lease_s, now, now, limit),
            )
            rows = cur.fetchall()
        return sorted((OutboxItem.from_row(tuple(r)) for r in rows), key=lambda i: i.next_attempt_at)

    def complete(self, incident_id: str, flow_run_id: str) -> None:
        with self._tx() as cur:
            cur.execute(
                "UPDATE intake_outbox SET flow_run_id = %s, dispatched_at = %s, lease_owner = NULL, "
                "lease_until = NULL, last_error = NULL WHERE incident_id = %s",
                (flow_run_id, self.clock(), incident_id),
            )

    def fail(self, incident_id: str, error: str, retry_at: float) -> int:
        with self._tx() as cur:
            cur.execute(
                "UPDATE intake_outbox SET attempts = attempts + 1, last_error = %s, next_attempt_at = %s, "
                "lease_owner = NULL, lease_until = NULL WHERE incident_id = %s RETURNING attempts",
                (error[:2000], retry_at, incident_id),
            )
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def get(self, incident_id: str) -> OutboxItem | None:
        with self._tx() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM intake_outbox WHERE incident_id = %s", (incident_id,))
            row = cur.fetchone()
        return OutboxItem.from_row(tuple(row)) if row else None

    def depth(self) -> int:
        with self._tx() as cur:
            cur.execute("SELECT count(*) FROM intake_outbox WHERE dispatched_at IS NULL")
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def next_due_at(self) -> float | None:
        with self._tx() as cur:
            cur.execute("SELECT min(next_attempt_at) FROM intake_outbox WHERE dispatched_at IS NULL")
            row = cur.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def ping(self) -> None:
        with self._tx() as cur:
            cur.execute("SELECT 1")

    def close(self) -> None:
        self._pool.close()


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite store URL, read as `runbook.store` reads it; None for PostgreSQL.

    `sqlite:///relative/path.sqlite3` (relative to the working directory), `sqlite:////absolute/path`.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return None
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return url[len("sqlite:///") :]
    raise OutboxFailed(
        f"unsupported store URL for the outbox: use sqlite:///path or postgresql://... ({url[:9]}...)"
    )


def open_outbox(url: str) -> Outbox:
    """The outbox next to the store at `url`: PostgreSQL for a `postgresql://` DSN, else a SQLite file."""
    path = sqlite_path(url)
    if path is None:
        return PostgresOutbox(url)
    return SqliteOutbox(path)
