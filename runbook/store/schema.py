"""The tables of the store's database, as one SQLAlchemy `MetaData`: incidents, outbox, drill history.

Usage::

    from runbook.store.schema import incidents, alerts, outbox, drill_history
    conn.execute(select(incidents.c.id).where(incidents.c.dedupe_key == key))

One description for both backends. Where SQLite and PostgreSQL store a value differently, a column type
says so once, here, and every query stays the same:

- `Timestamp`: PostgreSQL `TIMESTAMPTZ`; SQLite `TEXT` in ISO 8601 UTC with microseconds, the format
  the store has always written (ordering by the text is ordering by time).
- `Json`: PostgreSQL `JSONB`; SQLite `TEXT` holding JSON (the engine's serializer sorts keys).
- `incidents.open_key` exists on SQLite only: its UNIQUE constraint is "one open incident per dedupe
  key" there (set to NULL when resolved). PostgreSQL has a partial unique index instead
  (`incidents_one_open ... WHERE status <> 'resolved'`); no query touches `open_key` on PostgreSQL.

The DDL itself lives in the Alembic revisions (runbook/store/migrations/versions), which create exactly
these tables; this module is what the queries are built from. Times of the outbox and the drill history
are epoch seconds (floats), as they always were.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import DateTime, TypeDecorator, TypeEngine

__all__ = [
    "Json",
    "Timestamp",
    "actions",
    "alerts",
    "drill_history",
    "escalation_deadlines",
    "incidents",
    "metadata",
    "outbox",
    "raw_payloads",
    "target_leases",
    "timeline",
]

metadata = MetaData()


class Timestamp(TypeDecorator[datetime]):
    """An aware datetime in UTC: `TIMESTAMPTZ` on PostgreSQL, ISO 8601 text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.isoformat(timespec="microseconds") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime.fromisoformat(str(value))


Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""JSON: `JSONB` on PostgreSQL, JSON text on SQLite. Python None is SQL NULL."""

_Seq = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY AUTOINCREMENT

raw_payloads = Table(
    "raw_payloads",
    metadata,
    Column("id", Text, primary_key=True),
    Column("source", Text, nullable=False),
    Column("received_at", Timestamp, nullable=False),
    Column("headers", Json, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("request_id", Text),  # revision 0002: the sender's request id (Sentry `Request-ID`)
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Text, primary_key=True),
    Column("dedupe_key", Text, nullable=False),
    Column("open_key", Text, unique=True),  # SQLite only, see the module docstring
    Column("title", Text, nullable=False),
    Column("service", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("severity_rule", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("runbook", Text),
    Column("security", Boolean, nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("acknowledged_at", Timestamp),
    Column("mitigated_at", Timestamp),
    Column("resolved_at", Timestamp),
    Column("alert_count", Integer, nullable=False),
    Column("flow_run_id", Text),
    Column("slack_thread_ts", Text),
    Column("pagerduty_dedup_key", Text),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("source", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("service", Text, nullable=False),
    Column("labels", Json, nullable=False),
    Column("annotations", Json, nullable=False),
    Column("starts_at", Timestamp),
    Column("ends_at", Timestamp),
    Column("signals", Json, nullable=False),
    Column("raw_ref", Text),
    Column("received_at", Timestamp, nullable=False),
    Column("incident_id", Text),
)

timeline = Table(
    "timeline",
    metadata,
    Column("seq", _Seq, primary_key=True, autoincrement=True),
    Column("incident_id", Text, nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("actor", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("evidence", Json),
    Column("link", Text),
)

actions = Table(
    "actions",
    metadata,
    Column("key", Text, primary_key=True),
    Column("incident_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("claimed_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp),
    Column("run_id", Text),
    Column("detail", Text),
)

target_leases = Table(  # revision 0003: one remediation per target at a time (runbook/store/leases.py)
    "target_leases",
    metadata,
    Column("key", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("incident_id", Text),
    Column("purpose", Text),
    Column("taken_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
)

outbox = Table(
    "intake_outbox",
    metadata,
    Column("incident_id", Text, primary_key=True),
    Column("deployment", Text, nullable=False),
    Column("enqueued_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", Text),
    Column("lease_until", Float),
    Column("flow_run_id", Text),
    Column("dispatched_at", Float),
    Column("last_error", Text),
)

drill_history = Table(
    "drill_history",
    metadata,
    Column("drill_id", Text, primary_key=True),
    Column("scenario", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("via", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("allow_production", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("detect_s", Float),
    Column("acknowledge_s", Float),
    Column("mitigate_s", Float),
    Column("recover_s", Float),
    Column("mttr_s", Float),
    Column("incident_id", Text),
    Column("flow_run_id", Text),
    Column("report", Text, nullable=False),
)

escalation_deadlines = Table(  # revision 0004: escalation that outlives the `respond` process
    "escalation_deadlines",
    metadata,
    Column("incident_id", Text, primary_key=True),
    Column("key", Text, primary_key=True),  # "P1:lead": the level and the step of the chain
    Column("severity", Text, nullable=False),
    Column("due_at", Timestamp, nullable=False),
    Column("unacknowledged_only", Boolean, nullable=False),
    Column("notices", Json, nullable=False),  # what firing sends: Slack messages, a PagerDuty event
    Column("fired_at", Timestamp),
    Column("fired_by", Text),
)
