"""The incident store: raw payloads, alerts, incidents, their timeline and the action records.

Usage::

    from runbook.store import open_store

    with open_store("sqlite:///var/incidents.sqlite3") as store:     # or "postgresql://user@host/db"
        raw_id = store.save_raw_payload("alertmanager", body, headers)
        alert = store.add_alert(alert.model_copy(update={"raw_ref": raw_id}))
        incident, created = store.open_incident_for(alert, Severity.P1, "p1.service_unavailable", "svc-down")
        claim = store.claim_action(incident.id, "rollback", "prod/deployment/emotionscare", run_id=run_id)
        if claim.won:                      # recorded *before* acting: exactly one caller wins
            ...                            # act
            store.finish_action(claim.record.key, ActionStatus.SUCCEEDED, "revision 3 -> 2")

        with store.transaction() as tx:    # several writes, one commit (the intake's unit of work)
            tx.save_raw_payload(...); tx.add_alert(...)

    python -m runbook.store upgrade [URL]      # apply the schema's migrations (docs/storage.md)
    python -m runbook.store current [URL]

One storage layer, on SQLAlchemy Core, for the three users of the store's database: this store, the
intake's outbox (intake/outbox.py) and the drill history (runbook/drill_history.py). Its parts:

- `database`: the engine, transactions and what differs between SQLite and PostgreSQL;
- `schema`: the tables, one `MetaData`;
- `migrate` + `migrations/`: Alembic revisions, checked at open (`SchemaMismatch` unless at head;
  an empty database is created at head);
- `incident_store` (+ `payloads`, `actions`): `Store`, the incidents' contract; `statements`: its hot
  statements, built once per dialect; `rows`: rows to models.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from runbook.errors import StoreFailed
from runbook.store.database import Database
from runbook.store.deadlines import Deadline
from runbook.store.incident_store import (
    SEVERITY_RAISED_KIND,
    Claim,
    PostgresStore,
    RawPayload,
    SqliteStore,
    Store,
)
from runbook.store.migrate import HEAD, SchemaMismatch, open_database

if TYPE_CHECKING:
    from runbook.settings import Settings, StoreSettings

__all__ = [
    "SCHEMA_REVISION",
    "SCHEMA_VERSION",
    "SEVERITY_RAISED_KIND",
    "Claim",
    "Deadline",
    "PostgresStore",
    "RawPayload",
    "SchemaMismatch",
    "SqliteStore",
    "Store",
    "check_schema",
    "open_store",
    "refuse_outdated_schema",
    "schema_refusal",
    "store_url",
]

SCHEMA_REVISION = HEAD
"""The Alembic revision this code needs."""

SCHEMA_VERSION = int(HEAD)
"""`SCHEMA_REVISION` as a number (what `Store.schema_version()` returns when current)."""


def store_url(target: str | Settings | StoreSettings) -> str:
    """The URL of `target`: a URL, `Settings` or `StoreSettings`."""
    url = target if isinstance(target, str) else getattr(getattr(target, "store", target), "url", None)
    if not isinstance(url, str):
        raise TypeError(f"open_store needs a URL, Settings or StoreSettings, not {type(target).__name__}")
    return url


def open_store(target: str | Settings | StoreSettings, **options: Any) -> Store:
    """Open the store at `target`: a URL, `Settings` or `StoreSettings`.

    `sqlite:///relative/path.sqlite3`, `sqlite:////absolute/path.sqlite3`, or `postgresql://...`. An empty
    database is created at the current schema; one at another revision is refused (`SchemaMismatch`:
    "store schema is at revision X, this code needs Y: run python -m runbook.store upgrade").
    Options: SQLite `busy_timeout_s`; PostgreSQL `pool_max_size`, `connect_timeout_s`, `statement_timeout_s`.
    """
    db = open_database(store_url(target), name="store", **options)
    return SqliteStore(db) if db.backend == "sqlite" else PostgresStore(db)


def check_schema(target: str | Settings | StoreSettings) -> None:
    """Raise `SchemaMismatch` if the database at `target` exists and is not at this code's revision.

    For a process's start (intake, runners): nothing is created here, an empty or missing database is
    fine (whoever opens it first creates it). Other errors (unreachable) are left to the first use.
    """
    from runbook.store.database import parse_url
    from runbook.store.migrate import mismatch, our_tables, revision_of

    url = store_url(target)
    parsed = parse_url(url)
    if parsed.path is not None and not parsed.path.exists():
        return
    db = Database.open(url, name="store", connect_timeout_s=5.0)
    try:
        with db.tx() as conn:
            found = revision_of(conn)
            if found == HEAD:
                return
            legacy = found is None and bool(our_tables(conn))
            if found is None and not legacy:
                return
    finally:
        db.close()
    raise mismatch(found, legacy=legacy)


def schema_refusal(target: str | Settings | StoreSettings | None = None) -> str | None:
    """The one line a process exits with when its store is at another schema revision; None to go on.

    For `python -m intake` and the runners' start: `target` defaults to the settings' store. Invalid
    settings or an unreachable database are not refused here: the process reports those where it uses them.
    """
    from runbook.errors import SettingsError

    try:
        if target is None:
            from runbook.settings import load_settings

            target = load_settings()
        check_schema(target)
    except SchemaMismatch as exc:
        return str(exc)
    except (SettingsError, StoreFailed):
        return None
    return None


def refuse_outdated_schema(prog: str, target: str | Settings | StoreSettings | None = None) -> bool:
    """True, after printing `prog: <schema_refusal's line>` to stderr, when the process must not start.

    The start check of `python -m intake`, `python -m flows.serve` and `python -m flows.warm`, written
    once: the caller exits 2 when this is True.
    """
    refusal = schema_refusal(target)
    if refusal:
        print(f"{prog}: {refusal}", file=sys.stderr)
        return True
    return False
