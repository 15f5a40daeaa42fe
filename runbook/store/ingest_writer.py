"""The intake's writes inside one transaction, with the rows nobody waits for sent as one batch each.

Usage::

    with store.transaction() as tx:
        writer = IngestWriter(tx)
        raw_id, stored = writer.raw_payload("alertmanager", body, headers)       # queued (no request id)
        opened = writer.open_incident(alert, Severity.P1, "rule", "svc-down", dedupe_key=key)  # at once
        writer.alert(alert, raw_ref=raw_id, incident_id=opened.id)                # queued
        # or a whole batch's incidents at once: one multi-row upsert (+ one UPDATE for joins and raises)
        answers = writer.open_incidents([IncidentClaim(alert, Severity.P1, "rule", "svc-down", key), ...])
        writer.timeline_rows(answers[0][1])                                      # its entries, queued
        writer.flush()                      # raw payloads, alerts, timeline entries: one executemany each

Why not the `Store` methods one by one: on the intake's path each statement costs ~0.15-0.25 ms of CPU,
mostly SQLAlchemy's own execution overhead, and `add_alert`/`open_incident_for` read back rows the
intake already knows (the alert; the incident with its whole timeline, where the intake needs only the
id and flow run). Here only what must be answered at once runs at once: the incident upsert (its
id, whether it was created, its level and flow run) and a replay-keyed raw payload (`ON CONFLICT` says
whether it is a replay). Everything else is queued and `flush()` sends it as one `executemany` per
table, in foreign-key order (payloads, alerts, timeline). The incidents of many alerts are one
`open_incidents` call (`upsert_open_many`: one multi-row `INSERT … ON CONFLICT … DO UPDATE …
RETURNING` and at most one `executemany` UPDATE), so a group commit of N requests costs about five
statements whatever N (the profile in bench/RESULTS.md §10 had N upserts at ~27% of the intake's CPU
per alert). The caller flushes before its transaction (or savepoint) ends; a
failing flush raises there and the transaction rolls back whole, as any write would.

Same guarantees as the `Store` methods it stands in for: one open incident per dedupe key under
concurrent callers (the same upsert, one row per key per statement), a joining alert raises the incident's level and logs
`severity_raised`, a replayed request id is stored once. One difference, on purpose: an alert is
stored with its incident already set (no UPDATE afterwards); an alert id stored before keeps its row
as it was (`ON CONFLICT (id) DO NOTHING`, as `add_alert`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from runbook.errors import StoreFailed
from runbook.models import Alert, IncidentStatus, TimelineEntry, new_id, utc_now
from runbook.severity import Severity
from runbook.store.statements import statements

if TYPE_CHECKING:
    from runbook.store.incident_store import Store

__all__ = [
    "SEVERITY_RAISED_KIND",
    "IncidentClaim",
    "IngestWriter",
    "OpenedIncident",
    "alert_values",
    "entry_values",
    "upsert_open",
    "upsert_open_many",
]

PAGE_ROWS = 16
"""Rows per statement of the multi-row incident upsert: a 1,000-alert request is 63 statements, each
letting the intake's event loop run while the database works (one 1,000-row statement held it longer);
a group commit of ordinary requests is still one."""

SEVERITY_RAISED_KIND = "severity_raised"
"""Timeline kind of an incident raised to a higher level by an alert that joined it."""


@dataclass(frozen=True)
class OpenedIncident:
    """What the upsert of an open incident answers: enough for the intake, no read-back."""

    id: str
    created: bool
    severity: Severity
    flow_run_id: str | None


def alert_values(alert: Alert, *, raw_ref: str | None, incident_id: str | None) -> dict[str, Any]:
    """The `alerts` row of `alert`."""
    return {
        "id": alert.id,
        "source": alert.source.value,
        "fingerprint": alert.fingerprint,
        "status": alert.status.value,
        "name": alert.name,
        "service": alert.service,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "signals": alert.signals.observed(),
        "raw_ref": raw_ref,
        "received_at": alert.received_at,
        "incident_id": incident_id,
    }


def entry_values(incident_id: str, entry: TimelineEntry) -> dict[str, Any]:
    """The `timeline` row of `entry`."""
    return {
        "incident_id": incident_id,
        "at": entry.at,
        "actor": entry.actor,
        "kind": entry.kind,
        "message": entry.message,
        "evidence": entry.evidence,
        "link": entry.link,
    }


@dataclass(frozen=True)
class IncidentClaim:
    """One firing alert's claim on the open incident of its dedupe key (`upsert_open_many`).

    Its incident id (used if it creates one) and time are fixed when it is made, so a batch of claims
    stores what the same claims made and upserted one by one would.
    """

    alert: Alert
    severity: Severity
    rule: str
    runbook: str | None
    dedupe_key: str
    security: bool = False
    id: str = field(default_factory=new_id)
    at: datetime = field(default_factory=utc_now)


def upsert_open(
    conn: Connection,
    alert: Alert,
    severity: Severity,
    rule: str,
    runbook: str | None,
    *,
    dedupe_key: str | None = None,
    security: bool = False,
) -> tuple[OpenedIncident, list[dict[str, Any]]]:
    """Create or join the open incident of the key (default: the alert's fingerprint), raising its level.

    Returns the incident as the upsert answered it and the timeline rows to insert (`opened`, or
    `severity_raised` when a joining alert is more severe); the raise itself is written here.
    """
    claim = IncidentClaim(alert, Severity(severity), rule, runbook, dedupe_key or alert.fingerprint, security)
    return upsert_open_many(conn, [claim])[0]


def upsert_open_many(
    conn: Connection, claims: Sequence[IncidentClaim]
) -> list[tuple[OpenedIncident, list[dict[str, Any]]]]:
    """`upsert_open` for many claims: one multi-row upsert and at most one `executemany` UPDATE.

    The first claim of each dedupe key goes into one `INSERT … VALUES (…), (…) ON CONFLICT … DO
    UPDATE … RETURNING` (SQLAlchemy's "insertmanyvalues"; its rows are matched back by dedupe key, which
    is unique within it, as PostgreSQL requires: a statement may not touch one row twice;
    `sort_by_parameter_order` is not used: for an upsert on SQLite it runs one row per statement). The other
    claims of a key are folded in Python into that key's row, now locked by this transaction: each
    joins (`alert_count` + 1) and each that is more severe than the level so far raises it and gets its
    `severity_raised` entry, exactly as one upsert per claim in this order would; one UPDATE per
    changed incident then writes the count, level, rule and time. Keys go into the upsert in sorted
    order, so two writers lock the rows they share in one order (no deadlock between intake processes).

    Returns, per claim in order, what `upsert_open` returns for it.
    """
    if not claims:
        return []
    sql = statements(conn.dialect.name)  # the upsert's ON CONFLICT target differs (statements.py)
    sqlite = conn.dialect.name == "sqlite"
    first: dict[str, IncidentClaim] = {}
    for claim in claims:
        first.setdefault(claim.dedupe_key, claim)
    rows = [_incident_values(first[key], open_key=sqlite) for key in sorted(first)]
    answered = {
        str(r[0]): r
        for r in conn.execute(
            sql.upsert_incidents, rows, execution_options={"insertmanyvalues_page_size": PAGE_ROWS}
        ).all()
    }
    if answered.keys() != first.keys():
        missing = sorted(first.keys() - answered.keys())
        raise StoreFailed(f"upsert of the open incidents for {missing!r} returned nothing")
    state = {key: _Folded.of(answered[key], first[key]) for key in first}
    out: list[tuple[OpenedIncident, list[dict[str, Any]]]] = []
    for claim in claims:
        now = state[claim.dedupe_key]
        out.append(now.take(claim, is_first=claim is first[claim.dedupe_key]))
    changes = [
        {
            "b_id": s.id,
            "b_severity": s.severity.value,
            "b_rule": s.rule,
            "b_more": s.more,
            "b_now": s.updated_at,
        }
        for s in state.values()
        if s.changed
    ]
    if changes:
        conn.execute(sql.fold_incident, changes)
    return out


def _incident_values(claim: IncidentClaim, *, open_key: bool) -> dict[str, Any]:
    alert = claim.alert
    values: dict[str, Any] = {
        "id": claim.id,
        "dedupe_key": claim.dedupe_key,
        "title": alert.summary,
        "service": alert.service,
        "severity": claim.severity.value,
        "severity_rule": claim.rule,
        "status": IncidentStatus.TRIGGERED.value,
        "runbook": claim.runbook,
        "security": claim.security,
        "started_at": alert.starts_at or alert.received_at,
        "alert_count": 1,
        "pagerduty_dedup_key": claim.id,
        "created_at": claim.at,
        "updated_at": claim.at,
    }
    if open_key:  # SQLite: the UNIQUE open_key (statements.py)
        values["open_key"] = claim.dedupe_key
    return values


@dataclass
class _Folded:
    """One dedupe key's incident while its claims are folded in: what the upsert said, then each claim."""

    id: str
    created_by: str | None
    severity: Severity
    rule: str
    flow_run_id: str | None
    updated_at: datetime
    more: int = 0
    """Joins after the upsert's own (each `alert_count` + 1)."""
    changed: bool = False

    @classmethod
    def of(cls, row: Any, claim: IncidentClaim) -> _Folded:
        incident_id = str(row[1])
        created = incident_id == claim.id
        return cls(
            incident_id, claim.id if created else None, Severity(row[2]), str(row[3]), row[4], claim.at
        )

    def take(self, claim: IncidentClaim, *, is_first: bool) -> tuple[OpenedIncident, list[dict[str, Any]]]:
        """The claim's answer and timeline rows; a later claim of the key joins (and may raise)."""
        if not is_first:
            self.more += 1
            self.updated_at = claim.at
            self.changed = True
        actor = f"alert:{claim.alert.source.value}"
        if is_first and self.created_by == claim.id:
            entry = TimelineEntry(
                at=claim.at,
                actor=actor,
                kind="opened",
                message=f"{claim.severity} incident opened by alert {claim.alert.name!r} ({claim.rule})",
                evidence={"alert_id": claim.alert.id, "fingerprint": claim.alert.fingerprint},
            )
            return OpenedIncident(self.id, True, claim.severity, self.flow_run_id), [
                entry_values(self.id, entry)
            ]
        if not claim.severity.more_severe_than(self.severity):
            return OpenedIncident(self.id, False, self.severity, self.flow_run_id), []
        current, self.severity, self.rule = self.severity, claim.severity, claim.rule
        self.updated_at, self.changed = claim.at, True
        entry = TimelineEntry(
            at=claim.at,
            actor=actor,
            kind=SEVERITY_RAISED_KIND,
            message=f"severity raised {current} → {claim.severity} by alert {claim.alert.name!r} ({claim.rule})",
            evidence={
                "from": current.value,
                "to": claim.severity.value,
                "rule": claim.rule,
                "alert_id": claim.alert.id,
                "fingerprint": claim.alert.fingerprint,
            },
        )
        return OpenedIncident(self.id, False, claim.severity, self.flow_run_id), [
            entry_values(self.id, entry)
        ]


class IngestWriter:
    """The intake's writes in one open transaction of `store` (`store.transaction()`); not thread-safe."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._raws: list[dict[str, Any]] = []
        self._alerts: list[dict[str, Any]] = []
        self._entries: list[dict[str, Any]] = []
        self._seen: set[str] = set()

    def once(self, key: str) -> bool:
        """True the first time `key` is asked for in this writer (e.g. one outbox row per incident)."""
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def raw_payload(
        self, source: str, body: bytes, headers: Mapping[str, str], *, request_id: str | None = None
    ) -> tuple[str, bool]:
        """`(id, stored)` as `Store.save_raw_payload_once`; without a request id the row is queued."""
        if request_id is not None:
            return self.store.save_raw_payload_once(source, body, headers, request_id=request_id)
        values = self.store.raw_values(source, body, headers, request_id=None)
        self._raws.append(values)
        return str(values["id"]), True

    def alert(self, alert: Alert, *, raw_ref: str | None, incident_id: str | None) -> None:
        """Queue `alert` (its `raw_ref` and incident given here; the model's own are not read)."""
        self._alerts.append(alert_values(alert, raw_ref=raw_ref, incident_id=incident_id))

    def open_incident(
        self,
        alert: Alert,
        severity: Severity,
        rule: str,
        runbook: str | None,
        *,
        dedupe_key: str | None = None,
    ) -> OpenedIncident:
        """The open incident of the key, created or joined at once (its timeline entry queued)."""
        with self.store.database.tx(write=True) as conn:
            opened, entries = upsert_open(conn, alert, severity, rule, runbook, dedupe_key=dedupe_key)
        self._entries.extend(entries)
        return opened

    def open_incidents(
        self, claims: Sequence[IncidentClaim]
    ) -> list[tuple[OpenedIncident, list[dict[str, Any]]]]:
        """Many claims at once (`upsert_open_many`): per claim, its incident and its timeline rows.

        The rows are not queued: the caller queues them (`timeline_rows`) where they belong among its
        own entries, so the timeline reads as if the claims had been made one by one.
        """
        with self.store.database.tx(write=True) as conn:
            return upsert_open_many(conn, claims)

    def timeline_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue timeline rows as `open_incidents` answered them."""
        self._entries.extend(rows)

    def find_open_incident_id(self, dedupe_key: str) -> str | None:
        """The id of the open incident of `dedupe_key`, or None (no read of the incident itself)."""
        with self.store.database.tx() as conn:
            found = conn.execute(
                statements(conn.dialect.name).open_incident_id, {"b_key": dedupe_key}
            ).scalar()
        return None if found is None else str(found)

    def timeline(self, incident_id: str, entry: TimelineEntry) -> None:
        """Queue a timeline entry of an incident that exists (or is opened in this transaction)."""
        self._entries.append(entry_values(incident_id, entry))

    def flush(self) -> None:
        """Send what is queued: one `executemany` per table, payloads before the alerts that point at them."""
        with self.store.database.tx(write=True) as conn:
            sql = statements(conn.dialect.name)
            for statement, rows in (
                (sql.insert_raw, self._raws),
                (sql.insert_alert, self._alerts),
                (sql.insert_entry, self._entries),
            ):
                if rows:
                    conn.execute(statement, rows)
        self._raws, self._alerts, self._entries = [], [], []
