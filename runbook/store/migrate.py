"""Schema revisions with Alembic: which revision a database is at, creating it, upgrading it, refusing it.

Usage::

    ensure_schema(db)            # at open: a brand-new database is created at head; anything else
                                 # not at head is refused with `SchemaMismatch` (one line, says what to run)
    upgrade(url)                 # `python -m runbook.store upgrade`: adopt a database from before
                                 # migrations, then apply every revision up to head
    current(url)                 # `python -m runbook.store current`

The revisions ship inside the package (runbook/store/migrations); Alembic is configured here, in code
(script location `runbook.store:migrations`), so no alembic.ini is needed at run time. Every revision is
run on a connection this module opened, inside one transaction (SQLite: `BEGIN IMMEDIATE`; PostgreSQL:
under an advisory lock, so two replicas starting on an empty database do not both create it).

Decisions:

- a database with none of our tables is created at head by whoever opens it first (the embedded
  default, tests and `make demo` need no extra step);
- a database at an older revision, or from before migrations (today's `schema_version`,
  `intake_schema_version`, `drill_schema_version` tables), is refused by `open_store`, `open_outbox`
  and `open_history`: upgrading is a deliberate step (`python -m runbook.store upgrade`), taken once,
  not raced by every process that starts;
- a database at a revision this code does not know (a newer release migrated it) is refused too.

Adoption: revision 0001 is the schema of the code before migrations, written with `IF NOT EXISTS`, so on
a database that code created it keeps every table and row and only adds the tables of a layer that was
never opened there (the three layers created their tables lazily); 0002 then drops the old version tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, inspect, text

from runbook.errors import StoreFailed

if TYPE_CHECKING:
    from alembic.config import Config

    from runbook.store.database import Database

__all__ = [
    "HEAD",
    "LEGACY_TABLES",
    "REVISIONS",
    "SchemaMismatch",
    "current",
    "ensure_schema",
    "mismatch",
    "open_database",
    "our_tables",
    "revision_of",
    "upgrade",
]

REVISIONS = ("0001", "0002", "0003", "0004")
"""Every revision in order; the tests check this against the migrations folder."""

HEAD = REVISIONS[-1]

LEGACY_TABLES = {
    "schema_version": "store",
    "intake_schema_version": "outbox",
    "drill_schema_version": "history",
}
"""Version tables of the code before migrations (each layer had its own)."""

OUR_TABLES = frozenset(
    {
        "raw_payloads",
        "incidents",
        "alerts",
        "timeline",
        "actions",
        "intake_outbox",
        "drill_history",
        "target_leases",
        "escalation_deadlines",
    }
)

_LOCK_KEY = 0x52554E42  # pg_advisory_xact_lock key: "RUNB", the store's migration lock


class SchemaMismatch(StoreFailed):
    """The database's schema is not the one this code needs; the message says what to run."""


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, in code: the revisions inside this package, on `connection`."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "runbook.store:migrations")
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["connection"] = connection
    return cfg


def revision_of(conn: Connection) -> str | None:
    """The Alembic revision of the database (None: never migrated by Alembic)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def our_tables(conn: Connection) -> set[str]:
    """The tables of ours (current or from before migrations) that the database holds."""
    return set(inspect(conn).get_table_names()) & (OUR_TABLES | set(LEGACY_TABLES))


def mismatch(found: str | None, *, legacy: bool = False) -> SchemaMismatch:
    """The one-line refusal for a database at `found` (None and `legacy`: from before migrations)."""
    if found is not None and found not in REVISIONS:
        return SchemaMismatch(
            f"store schema is at revision {found}, newer than this code's {HEAD}: run a release that knows it"
        )
    shown = "none (created before migrations)" if found is None and legacy else found
    return SchemaMismatch(
        f"store schema is at revision {shown}, this code needs {HEAD}: run python -m runbook.store upgrade"
    )


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def ensure_schema(db: Database) -> None:
    """Accept a database at head; create an empty one at head; refuse anything else (`SchemaMismatch`)."""
    with db.tx() as conn:
        if revision_of(conn) == HEAD:  # the common case: one small query
            return
    with db.tx(write=True) as conn:
        _lock(conn)
        found = revision_of(conn)
        if found == HEAD:
            return  # another process created it meanwhile
        if found is None and not our_tables(conn):
            _run(conn, "head")
            return
        legacy = found is None
    raise mismatch(found, legacy=legacy)


def open_database(url: str, *, name: str, fail: type[Exception] = StoreFailed, **options: Any) -> Database:
    """The database at `url`, its schema ensured (`ensure_schema`); closed again if refused."""
    from runbook.store.database import Database

    db = Database.open(url, name=name, fail=fail, **options)
    try:
        ensure_schema(db)
    except BaseException:
        db.close()
        raise
    return db


def _run(conn: Connection, target: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(conn), target)


def _legacy_versions(conn: Connection) -> dict[str, int]:
    found: dict[str, int] = {}
    tables = set(inspect(conn).get_table_names())
    for table, layer in LEGACY_TABLES.items():
        if table in tables:
            value = conn.execute(text(f"SELECT MAX(version) FROM {table}")).scalar()
            found[layer] = int(value or 0)
    return found


def upgrade(url: str, target: str = "head") -> tuple[str | None, str | None]:
    """Bring the database at `url` to `target` (adopting one from before migrations); (before, after)."""
    from alembic.util import CommandError

    from runbook.store.database import Database

    db = Database.open(url, name="store")
    try:
        with db.tx(write=True) as conn:
            _lock(conn)
            before = revision_of(conn)
            if before is not None and before not in REVISIONS:
                raise mismatch(before)
            if before is None:
                too_new = {k: v for k, v in _legacy_versions(conn).items() if v > 1}
                if too_new:
                    raise SchemaMismatch(
                        "store schema is newer than this code knows (legacy versions "
                        + ", ".join(f"{k} {v}" for k, v in sorted(too_new.items()))
                        + "): run a release that knows it"
                    )
            try:
                _run(conn, target)
            except CommandError as exc:
                raise SchemaMismatch(f"cannot upgrade to {target}: {exc}") from exc
            after = revision_of(conn)
    finally:
        db.close()
    return before, after


def current(url: str) -> str | None:
    """The revision of the database at `url` (None: empty or from before migrations)."""
    from runbook.store.database import Database

    db = Database.open(url, name="store")
    try:
        with db.tx() as conn:
            return revision_of(conn)
    finally:
        db.close()
