"""Rows to models: what a row of `alerts`, `incidents`, `timeline` or `actions` reads as.

The column types (runbook/store/schema.py) already give aware datetimes and parsed JSON on both
backends, so this is only the mapping of columns to model fields.
"""

from __future__ import annotations

from sqlalchemy import RowMapping

from runbook.models import ActionRecord, ActionStatus, Alert, Incident, IncidentStatus, Signals, TimelineEntry
from runbook.severity import Severity
from runbook.store.schema import incidents

__all__ = ["INCIDENT_COLUMNS", "action_of", "alert_of", "entry_of", "incident_of"]

INCIDENT_COLUMNS = [c for c in incidents.c if c.name not in ("open_key", "created_at", "updated_at")]
"""What an `Incident` is read from (`open_key` exists on SQLite only)."""


def alert_of(row: RowMapping) -> Alert:
    return Alert(
        id=row["id"],
        source=row["source"],
        fingerprint=row["fingerprint"],
        status=row["status"],
        name=row["name"],
        service=row["service"],
        labels=row["labels"],
        annotations=row["annotations"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        signals=Signals(**row["signals"]),
        raw_ref=row["raw_ref"],
        received_at=row["received_at"],
    )


def entry_of(row: RowMapping) -> TimelineEntry:
    return TimelineEntry(
        at=row["at"],
        actor=row["actor"],
        kind=row["kind"],
        message=row["message"],
        evidence=row["evidence"],
        link=row["link"],
    )


def incident_of(row: RowMapping, timeline: list[TimelineEntry]) -> Incident:
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
        started_at=row["started_at"],
        acknowledged_at=row["acknowledged_at"],
        mitigated_at=row["mitigated_at"],
        resolved_at=row["resolved_at"],
        alert_count=int(row["alert_count"]),
        flow_run_id=row["flow_run_id"],
        slack_thread_ts=row["slack_thread_ts"],
        pagerduty_dedup_key=row["pagerduty_dedup_key"],
        timeline=timeline,
    )


def action_of(row: RowMapping) -> ActionRecord:
    return ActionRecord(
        key=row["key"],
        incident_id=row["incident_id"],
        action=row["action"],
        target=row["target"],
        status=ActionStatus(row["status"]),
        claimed_at=row["claimed_at"],
        finished_at=row["finished_at"],
        run_id=row["run_id"],
        detail=row["detail"],
    )
