"""The incident store: raw payloads, alerts, incidents, their timeline and the action records.

Usage::

    from runbook.store import open_store

    with open_store("sqlite:///var/incidents.sqlite3") as store:     # or "postgresql://user@host/db"
        raw_id = store.save_raw_payload("alertmanager", body, headers)
        alert = store.add_alert(alert.model_copy(update={"raw_ref": raw_id}))
        incident, created = store.open_incident_for(alert, Severity.P1, "p1.service_unavailable", "svc-down")
        claim = store.claim_action(incident.id, "rollback", "prod/deployment/emotionscare", run_id=run_id)
        if claim.won:                      # recorded *before* acting: exactly one caller wins
            ...                            # act
            store.finish_action(claim.record.key, ActionStatus.SUCCEEDED, "revision 3 -> 2")

One contract (`Store`), two backends: a SQLite file (the embedded default: stdlib sqlite3, WAL,
`busy_timeout`, every write in `BEGIN IMMEDIATE`) and PostgreSQL (psycopg 3, a small connection pool).
Both are safe from many threads (SQLite: one connection per thread; PostgreSQL: the pool) and from many
processes, each opening its own store from the same URL. The store creates and migrates its schema
itself (table `schema_version`; a newer schema than this code knows is refused).

Atomicity, which is what the automation relies on:

- `claim_action`: `INSERT … ON CONFLICT (key) DO NOTHING RETURNING`: of any number of concurrent callers
  for one (incident, action, target), exactly one gets `won=True`.
- `open_incident_for`: one open incident per dedupe key, enforced by a unique index (PostgreSQL: partial,
  on open incidents; SQLite: on an `open_key` column set to NULL when resolved) and taken with an upsert:
  of concurrent callers exactly one creates, the others join (`alert_count` + 1).
- `set_status`: read, check against the transition table and write under one lock.

Decisions: incident ids are fresh uuid4 hex; an incident's `pagerduty_dedup_key` is set to its id at
creation (one dedup_key for its whole life); its `started_at` is the first alert's `starts_at`, else when it
was received. Headers that carry credentials (Authorization, Cookie, anything with token/secret/key/
signature in its name) are not stored with raw payloads. Joining an incident does not change its severity:
the caller reclassifies with `update_incident` and records why in the timeline.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runbook.errors import NotFound, StoreFailed
from runbook.models import (
    ActionRecord,
    ActionStatus,
    Alert,
    Incident,
    IncidentStatus,
    Signals,
    TimelineEntry,
    action_key,
    new_id,
    next_status,
    utc_now,
)
from runbook.severity import Severity

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from runbook.settings import Settings, StoreSettings

__all__ = [
    "SCHEMA_VERSION",
    "Claim",
    "PostgresStore",
    "RawPayload",
    "SqliteStore",
    "Store",
    "open_store",
]


@dataclass(frozen=True)
class Claim:
    """The answer of `claim_action`: `won` says whether this caller may act; `record` is the stored claim."""

    won: bool
    record: ActionRecord


@dataclass(frozen=True)
class RawPayload:
    """A request body exactly as received, with its (credential-free) headers."""

    id: str
    source: str
    body: bytes
    headers: dict[str, str]
    received_at: datetime


class _Exec(Protocol):
    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None: ...
    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
    def run(self, sql: str, params: Sequence[Any] = ()) -> int: ...


_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|key|signature|password", re.IGNORECASE)

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

_INCIDENT_COLUMNS = (
    "id, dedupe_key, title, service, severity, severity_rule, status, runbook, security, started_at,"
    " acknowledged_at, mitigated_at, resolved_at, alert_count, flow_run_id, slack_thread_ts,"
    " pagerduty_dedup_key"
)


class Store(ABC):
    """The contract both backends implement. Build one with `open_store(url)`; close it when done."""

    backend: str
    """`"sqlite"` or `"postgresql"`."""

    def __init__(self, url: str) -> None:
        self._url = url

    @property
    def url(self) -> str:
        """The store's URL, password masked."""
        from runbook.settings import mask_url  # local: settings pulls pydantic-settings in

        return mask_url(self._url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what each backend provides ----------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Close every connection. The store is unusable afterwards."""

    @abstractmethod
    def _tx(self, write: bool) -> Any:
        """A context manager: one transaction, yielding an `_Exec`; writes are serialised where needed."""

    @abstractmethod
    def _enc_dt(self, value: datetime | None) -> Any: ...

    @abstractmethod
    def _enc_json(self, value: Any) -> Any: ...

    @abstractmethod
    def _upsert_open_incident(self) -> str:
        """INSERT of a new incident; on conflict with the key's open incident, count one more alert."""

    _for_update = ""
    _clear_open_key = ""

    @abstractmethod
    def schema_version(self) -> int:
        """The schema version of the database."""

    # -- raw payloads --------------------------------------------------------------------------------------

    def save_raw_payload(self, source: str, body: bytes, headers: Mapping[str, str]) -> str:
        """Keep a request body as received (credential headers left out); its id goes in `Alert.raw_ref`."""
        raw_id = new_id()
        kept = {k.lower(): v for k, v in headers.items() if not _SECRET_HEADER.search(k)}
        with self._tx(write=True) as db:
            db.run(
                "INSERT INTO raw_payloads (id, source, received_at, headers, body) VALUES (?, ?, ?, ?, ?)",
                (raw_id, source, self._enc_dt(utc_now()), self._enc_json(kept), bytes(body)),
            )
        return raw_id

    def get_raw_payload(self, raw_id: str) -> RawPayload:
        """The payload saved under `raw_id` (`NotFound` otherwise)."""
        with self._tx(write=False) as db:
            row = db.one("SELECT * FROM raw_payloads WHERE id = ?", (raw_id,))
        if row is None:
            raise NotFound(f"no raw payload {raw_id!r}")
        return RawPayload(
            id=row["id"],
            source=row["source"],
            body=bytes(row["body"]),
            headers=_json(row["headers"]),
            received_at=_dt(row["received_at"]),
        )

    # -- alerts --------------------------------------------------------------------------------------------

    def add_alert(self, alert: Alert) -> Alert:
        """Store `alert` (idempotent on `alert.id`: a second add returns the stored one)."""
        with self._tx(write=True) as db:
            db.run(
                "INSERT INTO alerts (id, source, fingerprint, status, name, service, labels, annotations,"
                " starts_at, ends_at, signals, raw_ref, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    alert.id,
                    alert.source.value,
                    alert.fingerprint,
                    alert.status.value,
                    alert.name,
                    alert.service,
                    self._enc_json(alert.labels),
                    self._enc_json(alert.annotations),
                    self._enc_dt(alert.starts_at),
                    self._enc_dt(alert.ends_at),
                    self._enc_json(alert.signals.observed()),
                    alert.raw_ref,
                    self._enc_dt(alert.received_at),
                ),
            )
            row = db.one("SELECT * FROM alerts WHERE id = ?", (alert.id,))
        assert row is not None  # inserted or already there, inside one transaction
        return _alert(row)

    def list_alerts(
        self, *, incident_id: str | None = None, fingerprint: str | None = None, limit: int = 1000
    ) -> list[Alert]:
        """Alerts, oldest first, optionally only those of one incident or one fingerprint."""
        where, params = _where(incident_id=incident_id, fingerprint=fingerprint)
        with self._tx(write=False) as db:
            rows = db.all(f"SELECT * FROM alerts{where} ORDER BY received_at, id LIMIT ?", (*params, limit))
        return [_alert(r) for r in rows]

    def alert_incident(self, alert_id: str) -> str | None:
        """The id of the incident `alert_id` belongs to, or None."""
        with self._tx(write=False) as db:
            row = db.one("SELECT incident_id FROM alerts WHERE id = ?", (alert_id,))
        if row is None:
            raise NotFound(f"no alert {alert_id!r}")
        return row["incident_id"]

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
        others join it (`alert_count` + 1). The alert, if stored, is linked to the incident.
        """
        key = dedupe_key or alert.fingerprint
        new = new_id()
        now = utc_now()
        started = alert.starts_at or alert.received_at
        with self._tx(write=True) as db:
            row = db.one(
                self._upsert_open_incident(),
                (
                    new,
                    key,
                    alert.summary,
                    alert.service,
                    Severity(severity).value,
                    rule,
                    IncidentStatus.TRIGGERED.value,
                    runbook,
                    security,
                    self._enc_dt(started),
                    1,
                    new,
                    self._enc_dt(now),
                    self._enc_dt(now),
                ),
            )
            if row is None:
                raise StoreFailed(f"upsert of the open incident for {key!r} returned nothing")
            incident_id = str(row["id"])
            created = incident_id == new
            db.run("UPDATE alerts SET incident_id = ? WHERE id = ?", (incident_id, alert.id))
            if created:
                self._insert_entry(
                    db,
                    incident_id,
                    TimelineEntry(
                        at=now,
                        actor=f"alert:{alert.source.value}",
                        kind="opened",
                        message=f"{severity} incident opened by alert {alert.name!r} ({rule})",
                        evidence={"alert_id": alert.id, "fingerprint": alert.fingerprint},
                    ),
                )
            incident = self._read_incident(db, incident_id, with_timeline=True)
        return incident, created

    def get_incident(self, incident_id: str, *, with_timeline: bool = True) -> Incident:
        """The incident (`NotFound` otherwise), with its timeline unless told not to."""
        with self._tx(write=False) as db:
            return self._read_incident(db, incident_id, with_timeline=with_timeline)

    def find_open_incident(self, dedupe_key: str) -> Incident | None:
        """The open incident of `dedupe_key`, or None."""
        with self._tx(write=False) as db:
            row = db.one(
                "SELECT id FROM incidents WHERE dedupe_key = ? AND status <> ?",
                (dedupe_key, IncidentStatus.RESOLVED.value),
            )
            return None if row is None else self._read_incident(db, row["id"], with_timeline=True)

    def list_incidents(
        self, *, open_only: bool = False, undispatched: bool = False, limit: int = 100
    ) -> list[Incident]:
        """Incidents, newest first (without timelines). `undispatched`: no flow run recorded yet."""
        clauses, params = [], []
        if open_only:
            clauses.append("status <> ?")
            params.append(IncidentStatus.RESOLVED.value)
        if undispatched:
            clauses.append("flow_run_id IS NULL")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._tx(write=False) as db:
            rows = db.all(
                f"SELECT {_INCIDENT_COLUMNS} FROM incidents{where} ORDER BY started_at DESC, id LIMIT ?",
                (*params, limit),
            )
        return [_incident(r, []) for r in rows]

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
        with self._tx(write=True) as db:
            row = db.one(f"SELECT status FROM incidents WHERE id = ?{self._for_update}", (incident_id,))
            if row is None:
                raise NotFound(f"no incident {incident_id!r}")
            current = IncidentStatus(row["status"])
            if next_status(current, status):
                column = _STATUS_COLUMN[status]
                extra = self._clear_open_key if status == IncidentStatus.RESOLVED else ""
                db.run(
                    f"UPDATE incidents SET status = ?, {column} = ?, updated_at = ?{extra} WHERE id = ?",
                    (status.value, self._enc_dt(at), self._enc_dt(utc_now()), incident_id),
                )
                self._insert_entry(
                    db,
                    incident_id,
                    TimelineEntry(
                        at=at, actor=actor, kind="status", message=message or f"{current} → {status}"
                    ),
                )
            return self._read_incident(db, incident_id, with_timeline=True)

    def update_incident(self, incident_id: str, **fields: Any) -> Incident:
        """Change some of: title, service, severity, severity_rule, runbook, security, flow_run_id,
        slack_thread_ts, pagerduty_dedup_key. Status changes go through `set_status`."""
        unknown = sorted(set(fields) - set(_UPDATABLE))
        if unknown:
            raise ValueError(f"cannot update incident field(s) {', '.join(unknown)}")
        if not fields:
            return self.get_incident(incident_id)
        values: list[Any] = []
        for name, value in fields.items():
            kind = _UPDATABLE[name]
            if value is None and name in ("title", "service", "severity", "severity_rule", "security"):
                raise ValueError(f"incident field {name} cannot be None")
            values.append(None if value is None else (kind(value).value if kind is Severity else kind(value)))
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._tx(write=True) as db:
            count = db.run(
                f"UPDATE incidents SET {assignments}, updated_at = ? WHERE id = ?",
                (*values, self._enc_dt(utc_now()), incident_id),
            )
            if count == 0:
                raise NotFound(f"no incident {incident_id!r}")
            return self._read_incident(db, incident_id, with_timeline=True)

    # -- timeline ------------------------------------------------------------------------------------------

    def append_timeline(self, incident_id: str, entry: TimelineEntry) -> TimelineEntry:
        """Add `entry` to the incident's timeline (`NotFound` for an unknown incident)."""
        with self._tx(write=True) as db:
            if db.one("SELECT id FROM incidents WHERE id = ?", (incident_id,)) is None:
                raise NotFound(f"no incident {incident_id!r}")
            self._insert_entry(db, incident_id, entry)
        return entry

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        """The incident's timeline in time order (ties: insertion order)."""
        with self._tx(write=False) as db:
            return self._read_timeline(db, incident_id)

    # -- actions -------------------------------------------------------------------------------------------

    def claim_action(
        self,
        incident_id: str,
        action: str,
        target: str,
        run_id: str | None = None,
        detail: str | None = None,
        *,
        retry_failed: bool = False,
    ) -> Claim:
        """Record the action *before* it runs; `won` tells whether this caller may act.

        Exactly one of any number of concurrent callers for (incident, action, target) wins. With
        `retry_failed`, a claim whose action finished `failed` can be won again (once).
        """
        key = action_key(incident_id, action, target)
        now = self._enc_dt(utc_now())
        with self._tx(write=True) as db:
            if db.one("SELECT id FROM incidents WHERE id = ?", (incident_id,)) is None:
                raise NotFound(f"no incident {incident_id!r}")
            row = db.one(
                "INSERT INTO actions (key, incident_id, action, target, status, claimed_at, run_id, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING key",
                (key, incident_id, action, target, ActionStatus.CLAIMED.value, now, run_id, detail),
            )
            won = row is not None
            if not won and retry_failed:
                won = (
                    db.run(
                        "UPDATE actions SET status = ?, claimed_at = ?, finished_at = NULL, run_id = ?,"
                        " detail = ? WHERE key = ? AND status = ?",
                        (ActionStatus.CLAIMED.value, now, run_id, detail, key, ActionStatus.FAILED.value),
                    )
                    == 1
                )
            record = db.one("SELECT * FROM actions WHERE key = ?", (key,))
        assert record is not None
        return Claim(won=won, record=_action(record))

    def finish_action(self, key: str, status: ActionStatus, detail: str | None = None) -> ActionRecord:
        """Record how a claimed action ended (`detail` replaces the claim's when given)."""
        status = ActionStatus(status)
        if status == ActionStatus.CLAIMED:
            raise ValueError("finish_action needs a final status, not 'claimed'")
        with self._tx(write=True) as db:
            count = db.run(
                "UPDATE actions SET status = ?, finished_at = ?, detail = COALESCE(?, detail) WHERE key = ?",
                (status.value, self._enc_dt(utc_now()), detail, key),
            )
            if count == 0:
                raise NotFound(f"no action {key!r}")
            row = db.one("SELECT * FROM actions WHERE key = ?", (key,))
        assert row is not None
        return _action(row)

    def get_action(self, key: str) -> ActionRecord | None:
        """The action record stored under `key`, or None."""
        with self._tx(write=False) as db:
            row = db.one("SELECT * FROM actions WHERE key = ?", (key,))
        return None if row is None else _action(row)

    def list_actions(self, incident_id: str) -> list[ActionRecord]:
        """The incident's action records in the order they were claimed."""
        with self._tx(write=False) as db:
            rows = db.all(
                "SELECT * FROM actions WHERE incident_id = ? ORDER BY claimed_at, key", (incident_id,)
            )
        return [_action(r) for r in rows]

    # -- shared internals ----------------------------------------------------------------------------------

    def _insert_entry(self, db: _Exec, incident_id: str, entry: TimelineEntry) -> None:
        db.run(
            "INSERT INTO timeline (incident_id, at, actor, kind, message, evidence, link)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                incident_id,
                self._enc_dt(entry.at),
                entry.actor,
                entry.kind,
                entry.message,
                None if entry.evidence is None else self._enc_json(entry.evidence),
                entry.link,
            ),
        )

    def _read_timeline(self, db: _Exec, incident_id: str) -> list[TimelineEntry]:
        rows = db.all("SELECT * FROM timeline WHERE incident_id = ? ORDER BY at, seq", (incident_id,))
        return [
            TimelineEntry(
                at=_dt(r["at"]),
                actor=r["actor"],
                kind=r["kind"],
                message=r["message"],
                evidence=None if r["evidence"] is None else _json(r["evidence"]),
                link=r["link"],
            )
            for r in rows
        ]

    def _read_incident(self, db: _Exec, incident_id: str, *, with_timeline: bool) -> Incident:
        row = db.one(f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,))
        if row is None:
            raise NotFound(f"no incident {incident_id!r}")
        return _incident(row, self._read_timeline(db, incident_id) if with_timeline else [])


# --- row decoding (both backends) ------------------------------------------------------------------------


def _dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value))


def _opt_dt(value: Any) -> datetime | None:
    return None if value is None else _dt(value)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _where(**filters: Any) -> tuple[str, tuple[Any, ...]]:
    used = {k: v for k, v in filters.items() if v is not None}
    if not used:
        return "", ()
    return " WHERE " + " AND ".join(f"{k} = ?" for k in used), tuple(used.values())


def _alert(row: Mapping[str, Any]) -> Alert:
    return Alert(
        id=row["id"],
        source=row["source"],
        fingerprint=row["fingerprint"],
        status=row["status"],
        name=row["name"],
        service=row["service"],
        labels=_json(row["labels"]),
        annotations=_json(row["annotations"]),
        starts_at=_opt_dt(row["starts_at"]),
        ends_at=_opt_dt(row["ends_at"]),
        signals=Signals(**_json(row["signals"])),
        raw_ref=row["raw_ref"],
        received_at=_dt(row["received_at"]),
    )


def _incident(row: Mapping[str, Any], timeline: list[TimelineEntry]) -> Incident:
    return Incident(
        id=row["id"],
        dedupe_key=row["dedupe_key"],
        title=row["title"],
        service=row["service"],
        severity=Severity(row["severity"]),
        severity_rule=row["severity_rule"],
        status=IncidentStatus(row["status"]),
        runbook=row["runbook"],
        security=bool(row["security"]),
        started_at=_dt(row["started_at"]),
        acknowledged_at=_opt_dt(row["acknowledged_at"]),
        mitigated_at=_opt_dt(row["mitigated_at"]),
        resolved_at=_opt_dt(row["resolved_at"]),
        alert_count=int(row["alert_count"]),
        flow_run_id=row["flow_run_id"],
        slack_thread_ts=row["slack_thread_ts"],
        pagerduty_dedup_key=row["pagerduty_dedup_key"],
        timeline=timeline,
    )


def _action(row: Mapping[str, Any]) -> ActionRecord:
    return ActionRecord(
        key=row["key"],
        incident_id=row["incident_id"],
        action=row["action"],
        target=row["target"],
        status=ActionStatus(row["status"]),
        claimed_at=_dt(row["claimed_at"]),
        finished_at=_opt_dt(row["finished_at"]),
        run_id=row["run_id"],
        detail=row["detail"],
    )


# --- schema ----------------------------------------------------------------------------------------------
# Versioned migrations, applied in order by the store itself. Never edit a released step: append one.

_SQLITE_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE raw_payloads (
            id TEXT PRIMARY KEY, source TEXT NOT NULL, received_at TEXT NOT NULL,
            headers TEXT NOT NULL, body BLOB NOT NULL)""",
        """CREATE TABLE incidents (
            id TEXT PRIMARY KEY, dedupe_key TEXT NOT NULL, open_key TEXT UNIQUE,
            title TEXT NOT NULL, service TEXT NOT NULL,
            severity TEXT NOT NULL CHECK (severity IN ('P1', 'P2', 'P3', 'P4')),
            severity_rule TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'mitigated', 'resolved')),
            runbook TEXT, security INTEGER NOT NULL DEFAULT 0, started_at TEXT NOT NULL,
            acknowledged_at TEXT, mitigated_at TEXT, resolved_at TEXT,
            alert_count INTEGER NOT NULL DEFAULT 1, flow_run_id TEXT, slack_thread_ts TEXT,
            pagerduty_dedup_key TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
        "CREATE INDEX incidents_dedupe_key ON incidents (dedupe_key)",
        "CREATE INDEX incidents_started_at ON incidents (started_at)",
        """CREATE TABLE alerts (
            id TEXT PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL, status TEXT NOT NULL,
            name TEXT NOT NULL, service TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL,
            starts_at TEXT, ends_at TEXT, signals TEXT NOT NULL, raw_ref TEXT, received_at TEXT NOT NULL,
            incident_id TEXT REFERENCES incidents (id))""",
        "CREATE INDEX alerts_incident ON alerts (incident_id)",
        "CREATE INDEX alerts_fingerprint ON alerts (fingerprint)",
        """CREATE TABLE timeline (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL REFERENCES incidents (id),
            at TEXT NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL,
            evidence TEXT, link TEXT)""",
        "CREATE INDEX timeline_incident ON timeline (incident_id, at)",
        """CREATE TABLE actions (
            key TEXT PRIMARY KEY, incident_id TEXT NOT NULL REFERENCES incidents (id),
            action TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL, claimed_at TEXT NOT NULL,
            finished_at TEXT, run_id TEXT, detail TEXT)""",
        "CREATE INDEX actions_incident ON actions (incident_id)",
    ],
}

_PG_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE raw_payloads (
            id TEXT PRIMARY KEY, source TEXT NOT NULL, received_at TIMESTAMPTZ NOT NULL,
            headers JSONB NOT NULL, body BYTEA NOT NULL)""",
        """CREATE TABLE incidents (
            id TEXT PRIMARY KEY, dedupe_key TEXT NOT NULL, title TEXT NOT NULL, service TEXT NOT NULL,
            severity TEXT NOT NULL CHECK (severity IN ('P1', 'P2', 'P3', 'P4')),
            severity_rule TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'mitigated', 'resolved')),
            runbook TEXT, security BOOLEAN NOT NULL DEFAULT FALSE, started_at TIMESTAMPTZ NOT NULL,
            acknowledged_at TIMESTAMPTZ, mitigated_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ,
            alert_count INTEGER NOT NULL DEFAULT 1, flow_run_id TEXT, slack_thread_ts TEXT,
            pagerduty_dedup_key TEXT, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)""",
        # one open incident per dedupe key
        "CREATE UNIQUE INDEX incidents_one_open ON incidents (dedupe_key) WHERE status <> 'resolved'",
        "CREATE INDEX incidents_dedupe_key ON incidents (dedupe_key)",
        "CREATE INDEX incidents_started_at ON incidents (started_at)",
        """CREATE TABLE alerts (
            id TEXT PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL, status TEXT NOT NULL,
            name TEXT NOT NULL, service TEXT NOT NULL, labels JSONB NOT NULL, annotations JSONB NOT NULL,
            starts_at TIMESTAMPTZ, ends_at TIMESTAMPTZ, signals JSONB NOT NULL, raw_ref TEXT,
            received_at TIMESTAMPTZ NOT NULL, incident_id TEXT REFERENCES incidents (id))""",
        "CREATE INDEX alerts_incident ON alerts (incident_id)",
        "CREATE INDEX alerts_fingerprint ON alerts (fingerprint)",
        """CREATE TABLE timeline (
            seq BIGSERIAL PRIMARY KEY, incident_id TEXT NOT NULL REFERENCES incidents (id),
            at TIMESTAMPTZ NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL,
            evidence JSONB, link TEXT)""",
        "CREATE INDEX timeline_incident ON timeline (incident_id, at)",
        """CREATE TABLE actions (
            key TEXT PRIMARY KEY, incident_id TEXT NOT NULL REFERENCES incidents (id),
            action TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL, claimed_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ, run_id TEXT, detail TEXT)""",
        "CREATE INDEX actions_incident ON actions (incident_id)",
    ],
}

SCHEMA_VERSION = max(_SQLITE_MIGRATIONS)
assert set(_SQLITE_MIGRATIONS) == set(_PG_MIGRATIONS), "both backends migrate through the same versions"

_INSERT_INCIDENT = (
    "INSERT INTO incidents (id, dedupe_key, title, service, severity, severity_rule, status, runbook,"
    " security, started_at, alert_count, pagerduty_dedup_key, created_at, updated_at{open_col})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?{open_val})"
)


def _check_version(found: int) -> None:
    if found > SCHEMA_VERSION:
        raise StoreFailed(f"the store's schema is version {found}, newer than this code's {SCHEMA_VERSION}")


# --- SQLite ----------------------------------------------------------------------------------------------


class _SqliteExec:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self._conn.execute(sql, params).fetchall()  # drain: no statement left open at COMMIT
        return dict(rows[0]) if rows else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute(sql, params).fetchall()]

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, params).rowcount


class SqliteStore(Store):
    """The embedded default: one SQLite file, WAL, a connection per thread, writes in `BEGIN IMMEDIATE`."""

    backend = "sqlite"
    _clear_open_key = ", open_key = NULL"

    def __init__(self, url: str, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        super().__init__(url)
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise StoreFailed(f"{self!r} is closed")
            # connections of threads that have ended are closed here, so short-lived threads leak none
            for _, old in [c for c in self._conns if not c[0].is_alive()]:
                old.close()
            self._conns = [c for c in self._conns if c[0].is_alive()]
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conns.append((threading.current_thread(), conn))
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")  # a 2xx promised "stored": survive a power cut too
        self._set_wal(conn)
        self._local.conn = conn
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment alone with the file; under a crowd of new connections it can be
        # refused with "locked" without waiting, so retry within the busy timeout.
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise StoreFailed(f"cannot open {self.path}: {exc}") from exc
                time.sleep(0.01)

    @contextmanager
    def _tx(self, write: bool) -> Iterator[_Exec]:
        try:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise StoreFailed(f"{self!r}: {exc}") from exc
        try:
            yield _SqliteExec(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreFailed(f"{self!r}: commit failed: {exc}") from exc

    def _migrate(self) -> None:
        if self.schema_version() == SCHEMA_VERSION:
            return
        with self._tx(write=True) as db:
            db.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
            found = (db.one("SELECT MAX(version) AS v FROM schema_version") or {}).get("v") or 0
            _check_version(found)
            for version in sorted(v for v in _SQLITE_MIGRATIONS if v > found):
                for statement in _SQLITE_MIGRATIONS[version]:
                    db.run(statement)
                db.run("INSERT INTO schema_version VALUES (?, ?)", (version, self._enc_dt(utc_now())))

    def schema_version(self) -> int:
        with self._tx(write=False) as db:
            exists = db.one("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
            found = (db.one("SELECT MAX(version) AS v FROM schema_version") or {}).get("v") if exists else 0
        version = int(found or 0)
        _check_version(version)
        return version

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for _, conn in conns:
            conn.close()
        self._local = threading.local()

    def _enc_dt(self, value: datetime | None) -> Any:
        return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")

    def _enc_json(self, value: Any) -> Any:
        return json.dumps(value, sort_keys=True, default=str)

    def _upsert_open_incident(self) -> str:
        return (
            # open_key = ?2, the dedupe key (anonymous "?" are numbered 1..14 before it)
            _INSERT_INCIDENT.format(open_col=", open_key", open_val=", ?2")
            + " ON CONFLICT (open_key) DO UPDATE SET alert_count = incidents.alert_count + 1,"
            " updated_at = excluded.updated_at RETURNING id"
        )


# --- PostgreSQL ------------------------------------------------------------------------------------------


class _PgExec:
    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        self._cur.execute(sql.replace("?", "%s"), params)
        return self._cur.fetchone() if self._cur.description else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._cur.execute(sql.replace("?", "%s"), params)
        return list(self._cur.fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cur.execute(sql.replace("?", "%s"), params)
        return int(self._cur.rowcount)


class PostgresStore(Store):
    """PostgreSQL through psycopg 3 and a connection pool (several intake replicas share one)."""

    backend = "postgresql"
    _for_update = " FOR UPDATE"
    _MIGRATION_LOCK = 0x52554E42  # pg_advisory_xact_lock key: "RUNB"

    def __init__(
        self,
        url: str,
        *,
        pool_max_size: int = 10,
        connect_timeout_s: float = 10.0,
        statement_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(url)
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        self._psycopg = psycopg
        self._timeout_s = connect_timeout_s
        try:
            self._pool: ConnectionPool[Any] = ConnectionPool(
                url,
                min_size=1,
                max_size=pool_max_size,
                open=True,
                timeout=connect_timeout_s + statement_timeout_s,
                kwargs={
                    "autocommit": True,
                    "row_factory": dict_row,
                    "connect_timeout": max(1, int(connect_timeout_s)),
                    "options": f"-c timezone=UTC -c statement_timeout={int(statement_timeout_s * 1000)}",
                },
                name="runbook-store",
            )
            self._pool.wait(timeout=connect_timeout_s)
        except Exception as exc:
            pool = getattr(self, "_pool", None)
            if pool is not None:
                pool.close()
            raise StoreFailed(f"cannot connect to {self.url}: {exc}") from exc
        self._migrate()

    @contextmanager
    def _tx(self, write: bool) -> Iterator[_Exec]:
        from psycopg_pool import PoolTimeout

        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield _PgExec(cur)
        except (self._psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreFailed(f"{self!r}: {exc}") from exc
        except self._psycopg.errors.ForeignKeyViolation as exc:
            raise NotFound(f"{self!r}: {exc.diag.message_detail or exc}") from exc

    def _migrate(self) -> None:
        if self.schema_version() == SCHEMA_VERSION:
            return
        with self._tx(write=True) as db:
            # one migrator at a time, across every process sharing the database
            db.run("SELECT pg_advisory_xact_lock(?)", (self._MIGRATION_LOCK,))
            db.run(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)"
            )
            found = (db.one("SELECT MAX(version) AS v FROM schema_version") or {}).get("v") or 0
            _check_version(found)
            for version in sorted(v for v in _PG_MIGRATIONS if v > found):
                for statement in _PG_MIGRATIONS[version]:
                    db.run(statement)
                db.run("INSERT INTO schema_version VALUES (?, ?)", (version, utc_now()))

    def schema_version(self) -> int:
        with self._tx(write=False) as db:
            exists = db.one("SELECT to_regclass('schema_version') AS t")
            found = None
            if exists and exists["t"] is not None:
                found = (db.one("SELECT MAX(version) AS v FROM schema_version") or {}).get("v")
        version = int(found or 0)
        _check_version(version)
        return version

    def close(self) -> None:
        self._pool.close()

    def _enc_dt(self, value: datetime | None) -> Any:
        return value

    def _enc_json(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def _upsert_open_incident(self) -> str:
        return (
            _INSERT_INCIDENT.format(open_col="", open_val="")
            + " ON CONFLICT (dedupe_key) WHERE status <> 'resolved'"
            " DO UPDATE SET alert_count = incidents.alert_count + 1, updated_at = EXCLUDED.updated_at"
            " RETURNING id"
        )


# --- opening ---------------------------------------------------------------------------------------------


def open_store(target: str | Settings | StoreSettings, **options: Any) -> Store:
    """Open (and create or migrate) the store at `target`: a URL, `Settings` or `StoreSettings`.

    `sqlite:///relative/path.sqlite3`, `sqlite:////absolute/path.sqlite3`, or `postgresql://...`.
    Options: SQLite `busy_timeout_s`; PostgreSQL `pool_max_size`, `connect_timeout_s`, `statement_timeout_s`.
    """
    url = target if isinstance(target, str) else getattr(getattr(target, "store", target), "url", None)
    if not isinstance(url, str):
        raise TypeError(f"open_store needs a URL, Settings or StoreSettings, not {type(target).__name__}")
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path or path == ":memory:":
            raise StoreFailed("the SQLite store needs a file path: sqlite:///path/to/incidents.sqlite3")
        return SqliteStore(url, Path(path), **options)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, **options)
    from runbook.settings import mask_url

    raise StoreFailed(f"unsupported store URL {mask_url(url)!r}: use sqlite:///path or postgresql://...")
