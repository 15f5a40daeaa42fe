"""The app's database: its psycopg pool (with the defect the sandbox models) and its schema.

Usage::

    ensure_schema(dsn)
    db = Database(dsn, acquire_timeout_s=1.0)
    db.build(10, reason="startup")
    query(db, lambda conn: conn.execute("SELECT 1").fetchone())   # AppError 500 when unreachable
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from sandbox.service.errors import AppError, one_line
from sandbox.service.revision import POOL_SIZE_ENV, SERVICE

__all__ = ["SCHEMA", "Database", "DatabaseUnavailable", "ensure_schema", "query"]

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_entries (
    id bigserial PRIMARY KEY,
    user_id text NOT NULL,
    mood text NOT NULL DEFAULT 'neutral',
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS journal_entries_user_created ON journal_entries (user_id, created_at DESC);
CREATE OR REPLACE VIEW journal_feed AS
    SELECT e.id, e.user_id, e.mood, e.body, e.created_at FROM journal_entries e;
"""


class DatabaseUnavailable(Exception):
    """The app could not use its database (no pool, no free connection, connection lost)."""


class Database:
    """The app's connection pool: `psycopg_pool.ConnectionPool(min_size=max_size=DB_POOL_SIZE)`.

    Usage::

        db = Database(dsn, acquire_timeout_s=1.0)
        db.build(10, reason="startup")
        db.run(lambda conn: conn.execute("SELECT 1").fetchone())   # DatabaseUnavailable on failure
        db.build(10, reason="admin reset")                          # the guide's option 1
        db.close()

    Two traits of the app, both common in production code, make the guide's options meaningful:

    - It holds one connection per `LISTEN` channel (`journal_events`, `notifications`) for as long as
      the pool lives. With `DB_POOL_SIZE` at or below their number, no connection is ever free for a
      request: the pool is exhausted whatever is reset; only a larger `DB_POOL_SIZE` helps (option 2).
    - The defect: its pool does not validate connections, and when a connection is lost mid-request
      the error path neither returns nor closes it. After the database restarts, each request takes
      a dead connection, fails, and keeps it; soon no connection is free. Nothing heals that but a
      new pool: `/admin/reset-db-pool` (option 1) or a new rollout (option 2 rolls the pods).
    """

    LISTEN_CHANNELS = ("journal_events", "notifications")

    def __init__(
        self,
        dsn: str,
        acquire_timeout_s: float = 1.0,
        connect_timeout_s: float = 2.0,
        open_wait_s: float = 1.0,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self.dsn = dsn
        self.acquire_timeout_s = acquire_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.open_wait_s = open_wait_s
        self._log = on_log or (lambda _line: None)
        self._lock = threading.RLock()
        self._pool: ConnectionPool | None = None
        self._size: int | None = None
        self._listeners: list[psycopg.Connection[Any]] = []
        self._leaked: list[psycopg.Connection[Any]] = []
        self._generation = 0
        self.built_at: datetime | None = None
        self.last_reason = ""

    @property
    def size(self) -> int | None:
        return self._size

    @property
    def generation(self) -> int:
        """How many pools were built so far (each reset or rollout builds one)."""
        return self._generation

    def build(self, size: int | None, reason: str) -> dict[str, Any]:
        """Close the current pool (and every connection it handed out) and open a new one of `size`
        connections (None or 0: no pool). Waits at most `open_wait_s` for its connections."""
        with self._lock:
            closed = self._close_locked()
            self._generation += 1
            self._size = size
            self.built_at = datetime.now(UTC)
            self.last_reason = reason
            if not size:
                self._log(f"ERROR db pool not created: {POOL_SIZE_ENV}={size} ({reason})")
                return {"pool_size": size, "closed_connections": closed, "connections": 0}
            pool: ConnectionPool = ConnectionPool(
                self.dsn,
                min_size=size,
                max_size=size,
                open=False,
                timeout=self.acquire_timeout_s,
                name=f"{SERVICE}-{self._generation}",
                kwargs={
                    "connect_timeout": max(1, math.ceil(self.connect_timeout_s)),
                    "application_name": SERVICE,
                },
                reconnect_timeout=300.0,
            )
            pool.open(wait=False)
            self._pool = pool
        # Not `pool.wait()`: it closes the pool when the database is down, and the app keeps its pool.
        deadline = time.monotonic() + self.open_wait_s
        while True:
            self.maintain()
            with self._lock:
                held = len(self._listeners) if self._pool is pool else size
            if pool.get_stats().get("pool_available", 0) + held >= size:
                break
            if time.monotonic() > deadline:
                self._log(f"WARN db pool: connections not ready after {self.open_wait_s:g}s ({reason})")
                break
            time.sleep(0.005)
        stats = pool.get_stats()
        self._log(f"INFO db pool created: size={size} ({reason})")
        return {
            "pool_size": size,
            "closed_connections": closed,
            "connections": stats.get("pool_size", 0),
            "listeners": len(self._listeners),
        }

    def maintain(self) -> None:
        """Take the LISTEN connections the pool still owes (after a build while the database was down)."""
        with self._lock:
            pool = self._pool
            if pool is None:
                return
            while len(self._listeners) < len(self.LISTEN_CHANNELS):
                channel = self.LISTEN_CHANNELS[len(self._listeners)]
                try:
                    conn = pool.getconn(timeout=0.05)
                except (PoolTimeout, PoolClosed):
                    return
                try:
                    conn.autocommit = True
                    conn.execute(f"LISTEN {channel}")
                except psycopg.Error as exc:
                    self._log(f"WARN db listener {channel}: {one_line(exc)}")
                    pool.putconn(conn)  # a broken one is discarded and replaced by the pool
                    return
                self._listeners.append(conn)

    def run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `fn(conn)` in a transaction on a pooled connection and commit.

        Raises `DatabaseUnavailable` when there is no pool, no free connection within
        `acquire_timeout_s`, or the connection is lost (which the app then keeps: the defect above);
        other `psycopg.Error`s (constraint violations, ...) propagate after a rollback.
        """
        with self._lock:
            pool, size = self._pool, self._size
        if pool is None:
            raise DatabaseUnavailable(f"no connection pool ({POOL_SIZE_ENV}={size})")
        try:
            conn = pool.getconn(timeout=self.acquire_timeout_s)
        except PoolTimeout as exc:
            in_use = self.in_use()
            raise DatabaseUnavailable(
                f"no connection free in the pool after {self.acquire_timeout_s:g}s ({in_use} of {size} in use)"
            ) from exc
        except PoolClosed as exc:
            raise DatabaseUnavailable("connection pool closed (being reset)") from exc
        try:
            result = fn(conn)
            conn.commit()
        except psycopg.Error as exc:
            if conn.broken:
                with self._lock:
                    self._leaked.append(conn)  # the modelled defect: lost connections are kept
                raise DatabaseUnavailable(f"connection lost: {one_line(exc)}") from exc
            _rollback_and_return(pool, conn)
            raise
        except BaseException:
            _rollback_and_return(pool, conn)
            raise
        pool.putconn(conn)
        return result

    def in_use(self) -> int:
        with self._lock:
            pool = self._pool
        if pool is None:
            return 0
        stats = pool.get_stats()
        return int(stats.get("pool_size", 0)) - int(stats.get("pool_available", 0))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            pool, size = self._pool, self._size
            listeners, leaked = len(self._listeners), len(self._leaked)
        out: dict[str, Any] = {
            "pool_size": size,
            "generation": self._generation,
            "listeners": listeners,
            "lost_connections_kept": leaked,
        }
        if pool is not None:
            stats = pool.get_stats()
            out["connections"] = int(stats.get("pool_size", 0))
            out["available"] = int(stats.get("pool_available", 0))
        return out

    def close(self) -> None:
        with self._lock:
            self._close_locked()
            self._size = None

    def _close_locked(self) -> int:
        pool, self._pool = self._pool, None
        held = self._listeners + self._leaked
        self._listeners, self._leaked = [], []
        for conn in held:
            conn.close()
        if pool is None:
            return len(held)
        closed = int(pool.get_stats().get("pool_size", 0))
        pool.close(timeout=2.0)
        return closed


def _rollback_and_return(pool: ConnectionPool, conn: psycopg.Connection[Any]) -> None:
    if not conn.broken and not conn.closed:
        try:
            conn.rollback()
        except psycopg.Error as exc:
            log.warning("rollback failed before returning a connection: %s", exc)
    pool.putconn(conn)


def ensure_schema(dsn: str) -> None:
    """Create the app's tables and views (idempotent), as its migrations would."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(SCHEMA)


def query(db: Database, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
    """`db.run(fn)`, an unreachable database answered as the app does: a 500 with the reason."""
    try:
        return db.run(fn)
    except DatabaseUnavailable as exc:
        raise AppError(
            500,
            {
                "status": "error",
                "error": "database_unavailable",
                "reason": f"database unreachable: {exc}",
            },
            "DatabaseError",
            str(exc),
            "database",
        ) from exc
