"""`Store`: raw payloads, alerts, incidents, their timeline and the action records, on SQLAlchemy Core.

One implementation for SQLite and PostgreSQL (runbook/store/database.py holds what differs). The class
is assembled from four modules: this one (incidents, timeline, units of work), payloads.py (raw
payloads and alerts), actions.py (action claims) and leases.py (target leases, changes per target).
Atomicity, which is what the automation relies on:

- `claim_action`: `INSERT … ON CONFLICT (key) DO NOTHING RETURNING`: of any number of concurrent callers
  for one (incident, action, target), exactly one gets `won=True`.
- `open_incident_for`: one open incident per dedupe key, enforced by a unique index (PostgreSQL: partial,
  on open incidents; SQLite: on an `open_key` column set to NULL when resolved) and taken with an upsert:
  of concurrent callers exactly one creates, the others join (`alert_count` + 1). These two `ON
  CONFLICT` targets are the dialect-specific SQL of the store (`sqlalchemy.dialects.*.insert`).
- `set_status`: read (`FOR UPDATE` on PostgreSQL; SQLite's write transaction is already exclusive),
  check against the transition table and write, in one transaction.
- `transaction()`: several calls as one unit of work, e.g. everything one intake request stores; the
  outbox joins it (`Outbox.joined`). `savepoint()` nests one part that may fail alone.

Decisions: incident ids are fresh uuid4 hex; an incident's `pagerduty_dedup_key` is set to its id at
creation (one dedup_key for its whole life); its `started_at` is the first alert's `starts_at`, else when it
was received. Headers that carry credentials (Authorization, Cookie, anything with token/secret/key/
signature in its name) are not stored with raw payloads. An alert joining an open incident at a higher
severity (P1 is highest) raises the incident to it in the same transaction and logs `severity_raised`
with from/to and the alert; a lower one never lowers it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, update

from runbook.errors import NotFound
from runbook.models import (
    Alert,
    Incident,
    IncidentStatus,
    TimelineEntry,
    next_status,
    utc_now,
)
from runbook.severity import Severity
from runbook.store import migrate
from runbook.store.actions import ActionRecords, Claim, require_incident
from runbook.store.database import BoundDatabase, Database
from runbook.store.deadlines import DeadlineRecords
from runbook.store.ingest_writer import SEVERITY_RAISED_KIND, IngestWriter, entry_values, upsert_open
from runbook.store.leases import Lease, LeaseRecords
from runbook.store.payloads import PayloadRecords, RawPayload
from runbook.store.rows import INCIDENT_COLUMNS, entry_of, incident_of
from runbook.store.schema import incidents
from runbook.store.statements import statements

__all__ = ["SEVERITY_RAISED_KIND", "Claim", "Lease", "PostgresStore", "RawPayload", "SqliteStore", "Store"]

_STATUS_COLUMN = {
    IncidentStatus.ACKNOWLEDGED: "acknowledged_at",
    IncidentStatus.MITIGATED: "mitigated_at",
    IncidentStatus.RESOLVED: "resolved_at",
}

_UPDATABLE = {
    "title": str,
    "service": str,
    "severity": Severity,
    "severity_rule": str,
    "runbook": str,
    "security": bool,
    "flow_run_id": str,
    "slack_thread_ts": str,
    "pagerduty_dedup_key": str,
}


class Store(PayloadRecords, ActionRecords, LeaseRecords, DeadlineRecords):
    """The incident store. Build one with `open_store(url)`; close it when done. Thread-safe."""

    backend: str
    """`"sqlite"` or `"postgresql"`."""

    def __init__(self, db: Database | BoundDatabase) -> None:
        self._db = db
        self.backend = db.backend

    @property
    def url(self) -> str:
        """The store's URL, password masked."""
        return self._db.masked_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection. The store is unusable afterwards (a bound store: nothing to close)."""
        if isinstance(self._db, Database):
            self._db.close()

    def schema_version(self) -> int:
        """The schema revision of the database as a number (`SCHEMA_VERSION` when current)."""
        with self._db.tx() as conn:
            found = migrate.revision_of(conn)
        return int(found) if found and found.isdigit() else 0

    # -- units of work -------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """One write transaction: the yielded store's calls all join it; any exception rolls all back.

        The outbox joins it too: `outbox.joined(tx)`. Inside a transaction, `transaction()` joins the same.
        """
        if isinstance(self._db, BoundDatabase):
            yield self
            return
        with self._db.tx(write=True) as conn:
            bound = copy.copy(self)
            bound._db = self._db.bound(conn)
            yield bound

    @contextmanager
    def savepoint(self) -> Iterator[Store]:
        """A part of a transaction that fails alone (SAVEPOINT); outside one, a transaction of its own."""
        if isinstance(self._db, BoundDatabase):
            with self._db.savepoint():
                yield self
            return
        with self.transaction() as tx:
            yield tx

    def ingest_writer(self) -> IngestWriter:
        """The intake's writes in this transaction, batched (runbook/store/ingest_writer.py)."""
        return IngestWriter(self)

    @property
    def database(self) -> Database | BoundDatabase:
        """The database under this store (what the outbox joins)."""
        return self._db

    # -- incidents -----------------------------------------------------------------------------------------

    def open_incident_for(
        self,
        alert: Alert,
        severity: Severity,
        rule: str,
        runbook: str | None,
        *,
        dedupe_key: str | None = None,
        security: bool = False,
    ) -> tuple[Incident, bool]:
        """The open incident for the alert's dedupe key (default: its fingerprint), created if none is open.

        Returns `(incident, created)`. Under concurrent callers with one key exactly one creates; the
        others join it (`alert_count` + 1), raising its severity if theirs is higher. The alert, if
        stored, is linked to the incident.
        """
        with self._db.tx(write=True) as conn:
            opened, entries = upsert_open(
                conn, alert, severity, rule, runbook, dedupe_key=dedupe_key, security=security
            )
            conn.execute(
                statements(conn.dialect.name).link_alert, {"b_id": alert.id, "b_incident": opened.id}
            )
            if entries:
                conn.execute(statements(conn.dialect.name).insert_entry, entries)
            incident = self._read_incident(conn, opened.id, with_timeline=True)
        return incident, opened.created

    def get_incident(self, incident_id: str, *, with_timeline: bool = True) -> Incident:
        """The incident (`NotFound` otherwise), with its timeline unless told not to."""
        with self._db.tx() as conn:
            return self._read_incident(conn, incident_id, with_timeline=with_timeline)

    def find_open_incident(self, dedupe_key: str) -> Incident | None:
        """The open incident of `dedupe_key`, or None."""
        with self._db.tx() as conn:
            found = conn.execute(
                statements(conn.dialect.name).open_incident_id, {"b_key": dedupe_key}
            ).scalar()
            return None if found is None else self._read_incident(conn, found, with_timeline=True)

    def list_incidents(
        self, *, open_only: bool = False, undispatched: bool = False, limit: int = 100
    ) -> list[Incident]:
        """Incidents, newest first (without timelines). `undispatched`: no flow run recorded yet."""
        query = select(*INCIDENT_COLUMNS).order_by(incidents.c.started_at.desc(), incidents.c.id).limit(limit)
        if open_only:
            query = query.where(incidents.c.status != IncidentStatus.RESOLVED.value)
        if undispatched:
            query = query.where(incidents.c.flow_run_id.is_(None))
        with self._db.tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [incident_of(r, []) for r in rows]

    def set_status(
        self,
        incident_id: str,
        status: IncidentStatus,
        at: datetime,
        actor: str,
        message: str | None = None,
    ) -> Incident:
        """Move the incident to `status` (transition table checked; same status: no-op) and log it.

        Raises `IllegalTransition` for a move the table forbids, `NotFound` for an unknown id.
        """
        status = IncidentStatus(status)
        with self._db.tx(write=True) as conn:
            found = conn.execute(
                select(incidents.c.status).where(incidents.c.id == incident_id).with_for_update()
            ).scalar()
            if found is None:
                raise NotFound(f"no incident {incident_id!r}")
            current = IncidentStatus(found)
            if next_status(current, status):
                changes: dict[str, Any] = {"status": status.value, _STATUS_COLUMN[status]: at}
                changes["updated_at"] = utc_now()
                if status == IncidentStatus.RESOLVED and conn.dialect.name == "sqlite":
                    changes["open_key"] = None  # frees the key for the next incident
                conn.execute(update(incidents).where(incidents.c.id == incident_id).values(changes))
                self._insert_entry(
                    conn,
                    incident_id,
                    TimelineEntry(
                        at=at, actor=actor, kind="status", message=message or f"{current} → {status}"
                    ),
                )
            return self._read_incident(conn, incident_id, with_timeline=True)

    def update_incident(self, incident_id: str, **fields: Any) -> Incident:
        """Change some of: title, service, severity, severity_rule, runbook, security, flow_run_id,
        slack_thread_ts, pagerduty_dedup_key. Status changes go through `set_status`."""
        unknown = sorted(set(fields) - set(_UPDATABLE))
        if unknown:
            raise ValueError(f"cannot update incident field(s) {', '.join(unknown)}")
        if not fields:
            return self.get_incident(incident_id)
        values: dict[str, Any] = {}
        for name, value in fields.items():
            kind = _UPDATABLE[name]
            if value is None and name in ("title", "service", "severity", "severity_rule", "security"):
                raise ValueError(f"incident field {name} cannot be None")
            values[name] = None if value is None else (kind(value).value if kind is Severity else kind(value))
        with self._db.tx(write=True) as conn:
            count = conn.execute(
                update(incidents).where(incidents.c.id == incident_id).values(**values, updated_at=utc_now())
            ).rowcount
            if count == 0:
                raise NotFound(f"no incident {incident_id!r}")
            return self._read_incident(conn, incident_id, with_timeline=True)

    # -- timeline ------------------------------------------------------------------------------------------

    def append_timeline(self, incident_id: str, entry: TimelineEntry) -> TimelineEntry:
        """Add `entry` to the incident's timeline (`NotFound` for an unknown incident)."""
        with self._db.tx(write=True) as conn:
            require_incident(conn, incident_id)
            self._insert_entry(conn, incident_id, entry)
        return entry

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        """The incident's timeline in time order (ties: insertion order)."""
        with self._db.tx() as conn:
            return self._read_timeline(conn, incident_id)

    # -- shared internals ----------------------------------------------------------------------------------

    def _insert_entry(self, conn: Connection, incident_id: str, entry: TimelineEntry) -> None:
        conn.execute(statements(conn.dialect.name).insert_entry, entry_values(incident_id, entry))

    def _read_timeline(self, conn: Connection, incident_id: str) -> list[TimelineEntry]:
        rows = conn.execute(statements(conn.dialect.name).timeline_of, {"b_incident": incident_id})
        return [entry_of(r) for r in rows.mappings()]

    def _read_incident(self, conn: Connection, incident_id: str, *, with_timeline: bool) -> Incident:
        row = (
            conn.execute(statements(conn.dialect.name).incident_by_id, {"b_id": incident_id})
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"no incident {incident_id!r}")
        return incident_of(row, self._read_timeline(conn, incident_id) if with_timeline else [])


class SqliteStore(Store):
    """The embedded default: one SQLite file (WAL, `busy_timeout`, writes in `BEGIN IMMEDIATE`)."""

    @property
    def path(self) -> Path | None:
        """The SQLite file."""
        return self._db.target.path


class PostgresStore(Store):
    """PostgreSQL through psycopg 3 and a bounded pool (several intake replicas share one)."""
