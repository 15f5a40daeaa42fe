"""Alembic revisions of the store (runbook/store/migrate.py runs them)."""
