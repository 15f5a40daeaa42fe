"""A raw payload's request id, unique per source (a replayed Sentry request is stored once); one version table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

- `raw_payloads.request_id` (nullable) and the unique index `raw_payloads_request` on
  (source, request_id): a second request with the same Sentry `Request-ID` finds the first instead of
  being stored again. Rows without a request id (NULL) never conflict, on either backend.
- The version tables of the code before migrations (`schema_version`, `intake_schema_version`,
  `drill_schema_version`) are dropped: `alembic_version` is the only one. An old release then refuses
  the database instead of running on a schema it does not know.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("raw_payloads", sa.Column("request_id", sa.Text(), nullable=True))
    op.create_index("raw_payloads_request", "raw_payloads", ["source", "request_id"], unique=True)
    for table in ("schema_version", "intake_schema_version", "drill_schema_version"):
        op.execute(f"DROP TABLE IF EXISTS {table}")


def downgrade() -> None:
    op.drop_index("raw_payloads_request", table_name="raw_payloads")
    with op.batch_alter_table("raw_payloads") as batch:
        batch.drop_column("request_id")
