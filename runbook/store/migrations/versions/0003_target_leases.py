"""Target leases: one remediation per target (cluster, namespace, Deployment) at a time, across incidents.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

- `target_leases`: one row per target being remediated (`key` = `runbook.policy.target_key`), who holds
  it (`holder`: the incident and run), for what, and until when (`expires_at`): a holder that crashed
  stops blocking once its lease expires; a live holder renews it. Taken with `INSERT … ON CONFLICT DO
  NOTHING`, or by taking over an expired row in the same transaction (runbook/store/leases.py).
- the index `actions_target_recent` on `actions (target, action, claimed_at)`: the budget per target
  counts a target's recent automated changes of one kind.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    stamp: sa.types.TypeEngine[Any] = sa.Text() if sqlite else sa.DateTime(timezone=True)
    op.create_table(
        "target_leases",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("incident_id", sa.Text()),
        sa.Column("purpose", sa.Text()),
        sa.Column("taken_at", stamp, nullable=False),
        sa.Column("expires_at", stamp, nullable=False),
    )
    op.create_index("actions_target_recent", "actions", ["target", "action", "claimed_at"])


def downgrade() -> None:
    op.drop_index("actions_target_recent", table_name="actions")
    op.drop_table("target_leases")
