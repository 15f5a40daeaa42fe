"""Escalation deadlines stored with the incident (part of `Store`; revision 0004).

Usage::

    store.plan_deadlines(incident_id, [Deadline(key="P1:lead", severity="P1", due_at=..., ...)])
    store.deadlines(incident_id)                    # the incident's plan, by due time
    store.due_deadlines(now, grace_s=30)            # unfired, due before now - grace, current level,
                                                    # open incidents only: what a sweeper fires
    store.mark_fired(incident_id, "P1:lead", "intake:sweep")

Why stored: the escalation timers used to live only in the `respond` process, so a runner killed
mid-incident took them with it. Planning is idempotent (a row is written once; a second plan of the
same step keeps the first due time). Firing is not decided here: whoever fires claims
`("escalate", key)` in `actions` first (one winner), then marks the row fired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from runbook.models import IncidentStatus
from runbook.store.database import BoundDatabase, Database, dialect_insert
from runbook.store.schema import escalation_deadlines as _table
from runbook.store.schema import incidents

__all__ = ["Deadline", "DeadlineRecords"]


@dataclass(frozen=True)
class Deadline:
    """One step of an incident's escalation chain: due when, cancelled by an acknowledgement or not,
    what it sends (`notices`: JSON-able dicts, see flows/escalation.py), fired when and by whom."""

    incident_id: str
    key: str
    severity: str
    due_at: datetime
    unacknowledged_only: bool
    notices: list[dict[str, Any]] = field(default_factory=list)
    fired_at: datetime | None = None
    fired_by: str | None = None


def _of(row: Any) -> Deadline:
    return Deadline(
        incident_id=row["incident_id"],
        key=row["key"],
        severity=row["severity"],
        due_at=row["due_at"],
        unacknowledged_only=bool(row["unacknowledged_only"]),
        notices=list(row["notices"] or []),
        fired_at=row["fired_at"],
        fired_by=row["fired_by"],
    )


class DeadlineRecords:
    """The deadline half of `Store` (a mixin: `Store` gives it `_db`)."""

    _db: Database | BoundDatabase

    def plan_deadlines(self, incident_id: str, planned: list[Deadline]) -> int:
        """Store the steps not stored yet (a stored step keeps its due time); how many were added."""
        added = 0
        with self._db.tx(write=True) as conn:
            for d in planned:
                stmt = dialect_insert(conn, _table).values(
                    incident_id=incident_id,
                    key=d.key,
                    severity=d.severity,
                    due_at=d.due_at,
                    unacknowledged_only=d.unacknowledged_only,
                    notices=d.notices,
                )
                done = conn.execute(
                    stmt.on_conflict_do_nothing(index_elements=["incident_id", "key"]).returning(_table.c.key)
                )
                added += done.first() is not None
        return added

    def deadlines(self, incident_id: str) -> list[Deadline]:
        """The incident's stored escalation steps, soonest first."""
        query = (
            select(_table).where(_table.c.incident_id == incident_id).order_by(_table.c.due_at, _table.c.key)
        )
        with self._db.tx() as conn:
            return [_of(r) for r in conn.execute(query).mappings().all()]

    def due_deadlines(self, now: datetime, grace_s: float = 0.0, limit: int = 100) -> list[Deadline]:
        """Unfired steps due at or before `now - grace_s`, of open incidents, at their current level."""
        query = (
            select(_table)
            .select_from(_table.join(incidents, incidents.c.id == _table.c.incident_id))
            .where(
                _table.c.fired_at.is_(None),
                _table.c.due_at <= now - timedelta(seconds=grace_s),
                incidents.c.status != IncidentStatus.RESOLVED.value,
                incidents.c.severity == _table.c.severity,
            )
            .order_by(_table.c.due_at)
            .limit(limit)
        )
        with self._db.tx() as conn:
            return [_of(r) for r in conn.execute(query).mappings().all()]

    def mark_fired(self, incident_id: str, key: str, by: str, at: datetime) -> bool:
        """Record that the step was fired (or settled: acknowledged, done by another); False if it was
        marked before."""
        with self._db.tx(write=True) as conn:
            done = conn.execute(
                update(_table)
                .where(_table.c.incident_id == incident_id, _table.c.key == key, _table.c.fired_at.is_(None))
                .values(fired_at=at, fired_by=by)
            )
        return done.rowcount == 1
