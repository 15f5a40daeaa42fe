"""Escalation deadlines stored with the incident, so escalation outlives the `respond` process.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

- `escalation_deadlines`: one row per (incident, level:step) of the escalation chain (`P1:lead`, ...),
  written by `respond`'s escalation watch when it plans the incident's current level: when the step
  is due (`due_at`), whether an acknowledgement cancels it (`unacknowledged_only`), what it sends
  (`notices`: the Slack messages and the PagerDuty event, rendered once), and when and by whom it was
  fired (`fired_at`, `fired_by`; NULL: not yet). Whoever fires a step (the watch, or intake's sweeper
  while no `respond` is alive) claims `("escalate", "P1:lead")` in `actions` first: exactly once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from runbook.store.schema import Json, Timestamp

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalation_deadlines",
        sa.Column("incident_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("due_at", Timestamp(), nullable=False),
        sa.Column("unacknowledged_only", sa.Boolean(), nullable=False),
        sa.Column("notices", Json, nullable=False),
        sa.Column("fired_at", Timestamp(), nullable=True),
        sa.Column("fired_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("incident_id", "key"),
    )
    op.create_index("escalation_deadlines_due", "escalation_deadlines", ["fired_at", "due_at"])


def downgrade() -> None:
    op.drop_index("escalation_deadlines_due", table_name="escalation_deadlines")
    op.drop_table("escalation_deadlines")
