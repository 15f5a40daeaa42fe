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
`FOR UPDATE SKIP LOCKED` (the one dialect-specific clause: SQLAlchemy leaves it out on SQLite, where the
claim's write transaction, `BEGIN IMMEDIATE`, already makes it one writer at a time).

One implementation on the store's storage layer (runbook/store: SQLAlchemy Core, the table in its
`MetaData`, the schema in its Alembic revisions): `open_outbox` refuses a database whose schema is not
current, like `open_store`. `joined(tx)` gives the outbox inside a store transaction, so an intake
request's incidents and outbox rows commit together (intake/ingest.py). Times are epoch seconds (float).
"""

from __future__ import annotations

import copy
import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, literal, select, update

from intake.errors import IntakeError
from runbook.store import SCHEMA_VERSION
from runbook.store.database import BoundDatabase, Database, dialect_insert_for
from runbook.store.migrate import open_database
from runbook.store.schema import incidents as _incidents
from runbook.store.schema import outbox as _table

__all__ = [
    "SCHEMA_VERSION",
    "Outbox",
    "OutboxFailed",
    "OutboxItem",
    "SqlOutbox",
    "open_outbox",
    "sqlite_path",
]


class InTransaction(Protocol):
    """A store inside `Store.transaction()`: what `Outbox.joined` takes."""

    @property
    def database(self) -> Any: ...


_COLUMNS = [
    _table.c[name]
    for name in (
        "incident_id",
        "deployment",
        "enqueued_at",
        "attempts",
        "next_attempt_at",
        "lease_owner",
        "lease_until",
        "flow_run_id",
        "dispatched_at",
        "last_error",
    )
]


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
    """The operations; `SqlOutbox` implements them on the store's database (SQLite or PostgreSQL)."""

    clock: Callable[[], float] = time.time

    @abstractmethod
    def enqueue(self, incident_id: str, deployment: str) -> bool:
        """Add the incident if it is not there yet; True if this call added it."""

    def enqueue_many(self, incident_ids: list[str], deployment: str) -> None:
        """`enqueue` for each of `incident_ids` (an implementation may send them as one statement)."""
        for incident_id in incident_ids:
            self.enqueue(incident_id, deployment)

    @abstractmethod
    def claim(self, owner: str, lease_s: float, limit: int) -> list[OutboxItem]:
        """Lease up to `limit` due, undispatched rows to `owner` for `lease_s` seconds, most severe
        incident first (P1 before P2 ...), then oldest first; returned in that order."""

    @abstractmethod
    def renew(self, owner: str, incident_ids: list[str], lease_s: float) -> int:
        """Extend `owner`'s leases on these rows to now + `lease_s` (the holder's heartbeat); how many it
        still held (a row whose lease expired and was claimed by another is not renewed)."""

    @abstractmethod
    def release(self, owner: str, incident_ids: list[str]) -> int:
        """Give back `owner`'s leases on these undispatched rows (a graceful stop); how many."""

    @abstractmethod
    def release_backoff(self) -> int:
        """Make every undispatched row that waits out a backoff due now (one UPDATE); how many.
        The dispatcher calls it when Prefect answers again after an outage: the backlog drains at once."""

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

    def joined(self, tx: InTransaction) -> Outbox:
        """This outbox inside the store transaction `tx` (`Store.transaction()`): one commit for both."""
        raise OutboxFailed(f"{type(self).__name__} cannot join a store transaction")


class SqlOutbox(Outbox):
    """The outbox table in the store's database, on SQLAlchemy Core (one implementation, both backends)."""

    def __init__(self, db: Database | BoundDatabase) -> None:
        self._db = db

    @property
    def backend(self) -> str:
        return self._db.backend

    def joined(self, tx: InTransaction) -> Outbox:
        joined = tx.database
        if not isinstance(joined, BoundDatabase):
            raise OutboxFailed("outbox: joined() needs a store inside `with store.transaction() as tx`")
        if joined.target.engine_url != self._db.target.engine_url:
            raise OutboxFailed("outbox: the store is in another database; they cannot share a transaction")
        bound = copy.copy(self)
        bound._db = joined
        return bound

    def enqueue(self, incident_id: str, deployment: str) -> bool:
        now = self.clock()
        row = {
            "incident_id": incident_id,
            "deployment": deployment,
            "enqueued_at": now,
            "attempts": 0,
            "next_attempt_at": now,
        }
        with self._db.tx(write=True) as conn:
            added = conn.execute(_enqueue_statement(conn.dialect.name), row).first()
        return added is not None

    def enqueue_many(self, incident_ids: list[str], deployment: str) -> None:
        """One `executemany` for all of them (the intake's group commit: one statement per batch)."""
        if not incident_ids:
            return
        now = self.clock()
        rows = [
            {
                "incident_id": i,
                "deployment": deployment,
                "enqueued_at": now,
                "attempts": 0,
                "next_attempt_at": now,
            }
            for i in incident_ids
        ]
        with self._db.tx(write=True) as conn:
            conn.execute(_enqueue_many_statement(conn.dialect.name), rows)

    def claim(self, owner: str, lease_s: float, limit: int) -> list[OutboxItem]:
        now = self.clock()
        # Most severe first, then oldest: after an outage a P1 does not wait behind the backlog. The
        # severity is the incident's (same database); a row whose incident is gone sorts last.
        severity = func.coalesce(_incidents.c.severity, literal("P9"))
        due = (
            select(_table.c.incident_id)
            .select_from(_table.outerjoin(_incidents, _incidents.c.id == _table.c.incident_id))
            .where(
                _table.c.dispatched_at.is_(None),
                _table.c.next_attempt_at <= now,
                (_table.c.lease_until.is_(None)) | (_table.c.lease_until < now),
            )
            .order_by(severity, _table.c.enqueued_at)
            .limit(limit)
            # PostgreSQL: lock the outbox rows only; SQLite: BEGIN IMMEDIATE serialises claims.
            .with_for_update(skip_locked=True, of=_table)
        )
        with self._db.tx(write=True) as conn:
            order = list(conn.execute(due).scalars())
            if not order:
                return []
            rows = conn.execute(
                update(_table)
                .where(_table.c.incident_id.in_(order))
                .values(lease_owner=owner, lease_until=now + lease_s)
                .returning(*_COLUMNS)
            ).all()
        rank = {incident_id: n for n, incident_id in enumerate(order)}
        return sorted((OutboxItem.from_row(tuple(r)) for r in rows), key=lambda i: rank[i.incident_id])

    def renew(self, owner: str, incident_ids: list[str], lease_s: float) -> int:
        now = self.clock()
        # An expired lease is not renewed: another replica may hold the row now.
        return self._held(owner, incident_ids, _table.c.lease_until >= now, lease_until=now + lease_s)

    def release(self, owner: str, incident_ids: list[str]) -> int:
        return self._held(owner, incident_ids, None, lease_owner=None, lease_until=None)

    def _held(self, owner: str, incident_ids: list[str], also: Any, **values: Any) -> int:
        """Update `owner`'s undispatched rows among `incident_ids` (and `also`); how many."""
        if not incident_ids:
            return 0
        where = [
            _table.c.incident_id.in_(incident_ids),
            _table.c.lease_owner == owner,
            _table.c.dispatched_at.is_(None),
        ]
        if also is not None:
            where.append(also)
        with self._db.tx(write=True) as conn:
            result = conn.execute(update(_table).where(*where).values(**values))
        return int(result.rowcount or 0)

    def release_backoff(self) -> int:
        now = self.clock()
        with self._db.tx(write=True) as conn:
            result = conn.execute(
                update(_table)
                .where(_table.c.dispatched_at.is_(None), _table.c.next_attempt_at > now)
                .values(next_attempt_at=now)
            )
        return int(result.rowcount or 0)

    def complete(self, incident_id: str, flow_run_id: str) -> None:
        with self._db.tx(write=True) as conn:
            conn.execute(
                update(_table)
                .where(_table.c.incident_id == incident_id)
                .values(
                    flow_run_id=flow_run_id,
                    dispatched_at=self.clock(),
                    lease_owner=None,
                    lease_until=None,
                    last_error=None,
                )
            )

    def fail(self, incident_id: str, error: str, retry_at: float) -> int:
        with self._db.tx(write=True) as conn:
            found = conn.execute(
                update(_table)
                .where(_table.c.incident_id == incident_id)
                .values(
                    attempts=_table.c.attempts + 1,
                    last_error=error[:2000],
                    next_attempt_at=retry_at,
                    lease_owner=None,
                    lease_until=None,
                )
                .returning(_table.c.attempts)
            ).scalar()
        return int(found) if found is not None else 0

    def get(self, incident_id: str) -> OutboxItem | None:
        with self._db.tx() as conn:
            row = conn.execute(select(*_COLUMNS).where(_table.c.incident_id == incident_id)).first()
        return OutboxItem.from_row(tuple(row)) if row else None

    def depth(self) -> int:
        with self._db.tx() as conn:
            found = conn.execute(
                select(func.count()).select_from(_table).where(_table.c.dispatched_at.is_(None))
            ).scalar()
        return int(found or 0)

    def next_due_at(self) -> float | None:
        with self._db.tx() as conn:
            found = conn.execute(
                select(func.min(_table.c.next_attempt_at)).where(_table.c.dispatched_at.is_(None))
            ).scalar()
        return None if found is None else float(found)

    def ping(self) -> None:
        with self._db.tx() as conn:
            conn.execute(select(1)).first()

    def close(self) -> None:
        if isinstance(self._db, Database):
            self._db.close()


@functools.cache
def _enqueue_statement(dialect: str) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING RETURNING`, built once per dialect (runbook/store/statements.py)."""
    stmt = dialect_insert_for(dialect, _table)
    return stmt.on_conflict_do_nothing(index_elements=["incident_id"]).returning(_table.c.incident_id)


@functools.cache
def _enqueue_many_statement(dialect: str) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` without `RETURNING` (sent as one `executemany`)."""
    return dialect_insert_for(dialect, _table).on_conflict_do_nothing(index_elements=["incident_id"])


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite store URL, read as `runbook.store` reads it; None for PostgreSQL.

    `sqlite:///relative/path.sqlite3` (relative to the working directory), `sqlite:////absolute/path`.
    """
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return None
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return url[len("sqlite:///") :]
    raise OutboxFailed(
        f"unsupported store URL for the outbox: use sqlite:///path or postgresql://... ({url[:9]}...)"
    )


def open_outbox(url: str, *, connect_timeout_s: float = 5.0, max_connections: int = 4) -> Outbox:
    """The outbox in the store's database at `url` (`sqlite:///path` or `postgresql://...`).

    An empty database is created at the current schema; one at another revision is refused with
    `SchemaMismatch` (a `StoreFailed`): "store schema is at revision X, this code needs Y: run ...".
    """
    sqlite_path(url)  # the outbox's own one-line refusal of a URL it cannot serve
    options: dict[str, Any] = {"busy_timeout_s": 10.0}
    if not url.startswith("sqlite:"):
        options = {"connect_timeout_s": connect_timeout_s, "pool_max_size": max_connections}
    return SqlOutbox(open_database(url, name="outbox", fail=OutboxFailed, **options))
