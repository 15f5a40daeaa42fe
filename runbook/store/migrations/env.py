"""Alembic's environment for the store: run on the connection `runbook.store.migrate` hands over.

Configured in code (runbook/store/migrate.py `alembic_config`), never from an alembic.ini: the caller
opens the connection and the transaction (SQLite `BEGIN IMMEDIATE`, PostgreSQL advisory lock), so the
revisions run inside it and a failure leaves the database as it was.
"""

from __future__ import annotations

from alembic import context

from runbook.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the store's migrations with: python -m runbook.store upgrade [URL]")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
