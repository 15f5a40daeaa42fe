"""Baseline: the schema of the three layers before migrations (store, intake outbox, drill history).

Revision ID: 0001
Revises: -
Create Date: 2026-12-06

Exactly the tables and indexes the hand-written layers created, per backend, each statement with
`IF NOT EXISTS`: on a database those layers created this changes nothing (its rows stay), and it adds the
tables of a layer that never opened there. Their own version tables (`schema_version`,
`intake_schema_version`, `drill_schema_version`) are not created; 0002 drops them where they exist.
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SQLITE = [
    """CREATE TABLE IF NOT EXISTS raw_payloads (
        id TEXT PRIMARY KEY, source TEXT NOT NULL, received_at TEXT NOT NULL,
        headers TEXT NOT NULL, body BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS incidents (
        id TEXT PRIMARY KEY, dedupe_key TEXT NOT NULL, open_key TEXT UNIQUE,
        title TEXT NOT NULL, service TEXT NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('P1', 'P2', 'P3', 'P4')),
        severity_rule TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'mitigated', 'resolved')),
        runbook TEXT, security INTEGER NOT NULL DEFAULT 0, started_at TEXT NOT NULL,
        acknowledged_at TEXT, mitigated_at TEXT, resolved_at TEXT,
        alert_count INTEGER NOT NULL DEFAULT 1, flow_run_id TEXT, slack_thread_ts TEXT,
        pagerduty_dedup_key TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS incidents_dedupe_key ON incidents (dedupe_key)",
    "CREATE INDEX IF NOT EXISTS incidents_started_at ON incidents (started_at)",
    """CREATE TABLE IF NOT EXISTS alerts (
        id TEXT PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL, status TEXT NOT NULL,
        name TEXT NOT NULL, service TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL,
        starts_at TEXT, ends_at TEXT, signals TEXT NOT NULL, raw_ref TEXT, received_at TEXT NOT NULL,
        incident_id TEXT REFERENCES incidents (id))""",
    "CREATE INDEX IF NOT EXISTS alerts_incident ON alerts (incident_id)",
    "CREATE INDEX IF NOT EXISTS alerts_fingerprint ON alerts (fingerprint)",
    """CREATE TABLE IF NOT EXISTS timeline (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL REFERENCES incidents (id),
        at TEXT NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL,
        evidence TEXT, link TEXT)""",
    "CREATE INDEX IF NOT EXISTS timeline_incident ON timeline (incident_id, at)",
    """CREATE TABLE IF NOT EXISTS actions (
        key TEXT PRIMARY KEY, incident_id TEXT NOT NULL REFERENCES incidents (id),
        action TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL, claimed_at TEXT NOT NULL,
        finished_at TEXT, run_id TEXT, detail TEXT)""",
    "CREATE INDEX IF NOT EXISTS actions_incident ON actions (incident_id)",
    """CREATE TABLE IF NOT EXISTS intake_outbox (
        incident_id TEXT PRIMARY KEY, deployment TEXT NOT NULL, enqueued_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, lease_owner TEXT,
        lease_until REAL, flow_run_id TEXT, dispatched_at REAL, last_error TEXT)""",
    "CREATE INDEX IF NOT EXISTS intake_outbox_due ON intake_outbox (dispatched_at, next_attempt_at)",
    """CREATE TABLE IF NOT EXISTS drill_history (
        drill_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, target TEXT NOT NULL, environment TEXT NOT NULL,
        via TEXT NOT NULL, status TEXT NOT NULL, allow_production INTEGER NOT NULL, started_at REAL NOT NULL,
        detect_s REAL, acknowledge_s REAL, mitigate_s REAL, recover_s REAL, mttr_s REAL,
        incident_id TEXT, flow_run_id TEXT, report TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS drill_history_scenario ON drill_history (scenario, started_at)",
]

POSTGRESQL = [
    """CREATE TABLE IF NOT EXISTS raw_payloads (
        id TEXT PRIMARY KEY, source TEXT NOT NULL, received_at TIMESTAMPTZ NOT NULL,
        headers JSONB NOT NULL, body BYTEA NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS incidents (
        id TEXT PRIMARY KEY, dedupe_key TEXT NOT NULL, title TEXT NOT NULL, service TEXT NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('P1', 'P2', 'P3', 'P4')),
        severity_rule TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'mitigated', 'resolved')),
        runbook TEXT, security BOOLEAN NOT NULL DEFAULT FALSE, started_at TIMESTAMPTZ NOT NULL,
        acknowledged_at TIMESTAMPTZ, mitigated_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ,
        alert_count INTEGER NOT NULL DEFAULT 1, flow_run_id TEXT, slack_thread_ts TEXT,
        pagerduty_dedup_key TEXT, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)""",
    # one open incident per dedupe key
    "CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_open ON incidents (dedupe_key) WHERE status <> 'resolved'",
    "CREATE INDEX IF NOT EXISTS incidents_dedupe_key ON incidents (dedupe_key)",
    "CREATE INDEX IF NOT EXISTS incidents_started_at ON incidents (started_at)",
    """CREATE TABLE IF NOT EXISTS alerts (
        id TEXT PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL, status TEXT NOT NULL,
        name TEXT NOT NULL, service TEXT NOT NULL, labels JSONB NOT NULL, annotations JSONB NOT NULL,
        starts_at TIMESTAMPTZ, ends_at TIMESTAMPTZ, signals JSONB NOT NULL, raw_ref TEXT,
        received_at TIMESTAMPTZ NOT NULL, incident_id TEXT REFERENCES incidents (id))""",
    "CREATE INDEX IF NOT EXISTS alerts_incident ON alerts (incident_id)",
    "CREATE INDEX IF NOT EXISTS alerts_fingerprint ON alerts (fingerprint)",
    """CREATE TABLE IF NOT EXISTS timeline (
        seq BIGSERIAL PRIMARY KEY, incident_id TEXT NOT NULL REFERENCES incidents (id),
        at TIMESTAMPTZ NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL,
        evidence JSONB, link TEXT)""",
    "CREATE INDEX IF NOT EXISTS timeline_incident ON timeline (incident_id, at)",
    """CREATE TABLE IF NOT EXISTS actions (
        key TEXT PRIMARY KEY, incident_id TEXT NOT NULL REFERENCES incidents (id),
        action TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL, claimed_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ, run_id TEXT, detail TEXT)""",
    "CREATE INDEX IF NOT EXISTS actions_incident ON actions (incident_id)",
    """CREATE TABLE IF NOT EXISTS intake_outbox (
        incident_id TEXT PRIMARY KEY, deployment TEXT NOT NULL, enqueued_at DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at DOUBLE PRECISION NOT NULL, lease_owner TEXT,
        lease_until DOUBLE PRECISION, flow_run_id TEXT, dispatched_at DOUBLE PRECISION, last_error TEXT)""",
    "CREATE INDEX IF NOT EXISTS intake_outbox_due ON intake_outbox (dispatched_at, next_attempt_at)",
    """CREATE TABLE IF NOT EXISTS drill_history (
        drill_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, target TEXT NOT NULL, environment TEXT NOT NULL,
        via TEXT NOT NULL, status TEXT NOT NULL, allow_production INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL, detect_s DOUBLE PRECISION, acknowledge_s DOUBLE PRECISION,
        mitigate_s DOUBLE PRECISION, recover_s DOUBLE PRECISION, mttr_s DOUBLE PRECISION,
        incident_id TEXT, flow_run_id TEXT, report TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS drill_history_scenario ON drill_history (scenario, started_at)",
]


def upgrade() -> None:
    for statement in POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    for table in (
        "drill_history",
        "intake_outbox",
        "actions",
        "timeline",
        "alerts",
        "incidents",
        "raw_payloads",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
