"""Drill history: one row per drill, in the incident store's database, so the MTTR trend is visible.

Usage::

    from runbook.drill_history import open_history
    from runbook.postmortem import HistoryRow

    with open_history(settings.store.url) as history:      # same SQLite file / PostgreSQL DSN as the store
        history.record(HistoryRow.of(result), report=result.model_dump_json())   # idempotent on drill_id
        rows = history.list(scenario="high-error-rate", limit=50)                 # newest first

Why a table of its own: the store's incident contract (runbook/store) has no place for drill figures; the
`drill_history` table sits beside the incidents in the same database, described in the store's one
`MetaData` and created by its Alembic revisions, so there is one schema and one version for all of it
(`open_history` refuses a database whose schema is not current, like `open_store`). One implementation
for both backends on SQLAlchemy Core; `record` is an upsert (`ON CONFLICT (drill_id) DO UPDATE`, the
dialect's insert). Times are epoch seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from runbook.errors import StoreFailed
from runbook.postmortem import HistoryRow
from runbook.store import SCHEMA_VERSION
from runbook.store.database import Database, dialect_insert
from runbook.store.migrate import open_database
from runbook.store.schema import drill_history as _table

__all__ = ["SCHEMA_VERSION", "DrillHistory", "HistoryFailed", "open_history"]

_FIELDS = (
    "drill_id",
    "scenario",
    "target",
    "environment",
    "via",
    "status",
    "allow_production",
    "started_at",
    "detect_s",
    "acknowledge_s",
    "mitigate_s",
    "recover_s",
    "mttr_s",
    "incident_id",
    "flow_run_id",
)
_COLUMNS = [_table.c[f] for f in _FIELDS]


class HistoryFailed(StoreFailed):
    """The drill history could not be read or written."""


def _values(row: HistoryRow, report: str) -> dict[str, Any]:
    data = row.model_dump()
    data["started_at"] = row.started_at.timestamp()
    data["allow_production"] = int(row.allow_production)
    return {**{f: data[f] for f in _FIELDS}, "report": report}


def _row(values: tuple[Any, ...]) -> HistoryRow:
    data = dict(zip(_FIELDS, values, strict=True))
    data["started_at"] = datetime.fromtimestamp(float(data["started_at"]), UTC)
    data["allow_production"] = bool(data["allow_production"])
    return HistoryRow.model_validate(data)


class DrillHistory:
    """Drill rows in the store's database (SQLite or PostgreSQL). Build one with `open_history(url)`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __enter__(self) -> DrillHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, row: HistoryRow, report: str = "") -> None:
        """Insert the drill, or replace it if its `drill_id` is there (a re-run report)."""
        values = _values(row, report)
        with self._db.tx(write=True) as conn:
            stmt = dialect_insert(conn, _table).values(values)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["drill_id"],
                    set_={k: stmt.excluded[k] for k in values if k != "drill_id"},
                )
            )

    def list(self, *, scenario: str | None = None, limit: int = 100) -> list[HistoryRow]:
        """Drills, newest first, optionally of one scenario."""
        query = select(*_COLUMNS).order_by(_table.c.started_at.desc()).limit(limit)
        if scenario:
            query = query.where(_table.c.scenario == scenario)
        with self._db.tx() as conn:
            rows = conn.execute(query).all()
        return [_row(tuple(r)) for r in rows]

    def report(self, drill_id: str) -> str | None:
        """The stored report (DrillResult JSON) of one drill, or None."""
        with self._db.tx() as conn:
            found = conn.execute(select(_table.c.report).where(_table.c.drill_id == drill_id)).first()
        return None if found is None else str(found[0])

    def close(self) -> None:
        """Release the connections."""
        self._db.close()


def open_history(url: str) -> DrillHistory:
    """The drill history beside the store at `url` (`sqlite:///path` or `postgresql://...`).

    An empty database is created at the current schema; one at another revision is refused with
    `SchemaMismatch` (a `StoreFailed`), like `open_store`.
    """
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://", "postgresql+psycopg://")) or url in (
        "sqlite:///",
    ):
        raise HistoryFailed(
            f"drill history: unsupported store URL (use sqlite:///path or postgresql://...): {url[:9]}..."
        )
    options: dict[str, Any] = {"busy_timeout_s": 10.0} if url.startswith("sqlite:") else {"pool_max_size": 2}
    return DrillHistory(open_database(url, name="drill history", fail=HistoryFailed, **options))
