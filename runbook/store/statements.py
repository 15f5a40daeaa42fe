"""The store's hot statements, built once per dialect and run with parameters.

Building a SQLAlchemy statement with `.values(...)` per call coerces every value and computes a fresh
cache key each time; on the intake's path (raw payload, alert, incident upsert, timeline) that was most
of the CPU per request. These are built once per dialect (`statements("sqlite")`) with bound parameters
and executed as `conn.execute(stmt, params)`, so SQLAlchemy's compiled cache serves them.
Parameters named `b_*` are for WHERE clauses (a name of a column being set is reserved by SQLAlchemy).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update

from runbook.store.database import dialect_insert_for
from runbook.store.rows import INCIDENT_COLUMNS
from runbook.store.schema import alerts, incidents, raw_payloads, timeline

__all__ = ["Statements", "statements"]


@dataclass(frozen=True)
class Statements:
    insert_raw: Any
    insert_raw_once: Any
    raw_by_request: Any
    insert_alert: Any
    alert_by_id: Any
    upsert_incidents: Any
    link_alert: Any
    fold_incident: Any
    insert_entry: Any
    timeline_of: Any
    incident_by_id: Any
    open_incident_id: Any


@functools.cache
def statements(dialect: str) -> Statements:
    """The statements for `dialect` ("sqlite" or "postgresql"), built on first use."""
    upsert = dialect_insert_for(dialect, incidents)
    join = {"alert_count": incidents.c.alert_count + 1, "updated_at": upsert.excluded.updated_at}
    if dialect == "postgresql":  # the partial unique index on open incidents (a literal predicate: inferred)
        upsert = upsert.on_conflict_do_update(
            index_elements=["dedupe_key"], index_where=text("status <> 'resolved'"), set_=join
        )
    else:  # SQLite: the UNIQUE open_key, NULL once resolved
        upsert = upsert.on_conflict_do_update(index_elements=["open_key"], set_=join)
    return Statements(
        insert_raw=insert(raw_payloads),
        insert_raw_once=dialect_insert_for(dialect, raw_payloads)
        .on_conflict_do_nothing(index_elements=["source", "request_id"])
        .returning(raw_payloads.c.id),
        raw_by_request=select(raw_payloads.c.id).where(
            raw_payloads.c.source == bindparam("b_source"),
            raw_payloads.c.request_id == bindparam("b_request"),
        ),
        insert_alert=dialect_insert_for(dialect, alerts).on_conflict_do_nothing(index_elements=["id"]),
        alert_by_id=select(alerts).where(alerts.c.id == bindparam("b_id")),
        # many rows per statement (insertmanyvalues), matched back by dedupe key (unique in one statement)
        upsert_incidents=upsert.returning(
            incidents.c.dedupe_key,
            incidents.c.id,
            incidents.c.severity,
            incidents.c.severity_rule,
            incidents.c.flow_run_id,
        ),
        link_alert=update(alerts)
        .where(alerts.c.id == bindparam("b_id"))
        .values(incident_id=bindparam("b_incident")),
        fold_incident=update(incidents)  # the joins and raises after an upsert (ingest_writer.py)
        .where(incidents.c.id == bindparam("b_id"))
        .values(
            severity=bindparam("b_severity"),
            severity_rule=bindparam("b_rule"),
            alert_count=incidents.c.alert_count + bindparam("b_more", type_=incidents.c.alert_count.type),
            updated_at=bindparam("b_now", type_=incidents.c.updated_at.type),
        ),
        insert_entry=insert(timeline),
        timeline_of=select(timeline)
        .where(timeline.c.incident_id == bindparam("b_incident"))
        .order_by(timeline.c.at, timeline.c.seq),
        incident_by_id=select(*INCIDENT_COLUMNS).where(incidents.c.id == bindparam("b_id")),
        open_incident_id=select(incidents.c.id).where(
            incidents.c.dedupe_key == bindparam("b_key"), incidents.c.status != "resolved"
        ),
    )
