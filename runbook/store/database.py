"""The store's database: one SQLAlchemy engine per opener, transactions, and the few dialect settings.

Usage::

    db = Database.open("sqlite:///var/incidents.sqlite3", name="store")    # or postgresql://...
    with db.tx(write=True) as conn:             # one transaction; an exception rolls it back
        conn.execute(insert(...))
    joined = db.bound(conn)                     # the same transaction, for another layer (the outbox)
    db.close()

Every layer on this database (incident store, intake outbox, drill history) opens it through this class,
so a URL means the same thing to all three and they can share one transaction. What is specific to a
backend is here and nowhere else:

- URLs: `sqlite:///path` (relative to the working directory) or `sqlite:////absolute/path`;
  `postgresql://`, `postgres://` and `postgresql+psycopg://` all mean psycopg 3.
- SQLite (the embedded default): WAL, `busy_timeout`, `foreign_keys`, `synchronous = FULL` on every
  connection (a 202 promised "stored": survive a power cut too). Python's sqlite3 module would start
  transactions itself and skip BEGIN before SAVEPOINT; SQLAlchemy's documented recipe turns that off
  (`isolation_level = None` on connect) and emits BEGIN from the `begin` event: `BEGIN IMMEDIATE` for a
  write transaction (one writer at a time, taken up front so two writers never deadlock upgrading a
  read lock), plain `BEGIN` for reads.
- PostgreSQL: a bounded pool, `connect_timeout`, `timezone=UTC` and a `statement_timeout` per session.

Errors: a database error becomes the caller's `fail` class (default `StoreFailed`) with a one-line
message; a foreign-key violation becomes `NotFound` (an unknown incident).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from runbook.errors import NotFound, StoreFailed

__all__ = ["BoundDatabase", "Database", "StoreUrl", "dialect_insert", "dialect_insert_for", "parse_url"]

_dumps = partial(json.dumps, sort_keys=True, default=str)


def _mask(url: str) -> str:
    from runbook.settings import mask_url  # local: settings pulls pydantic-settings in

    return mask_url(url)


@dataclass(frozen=True)
class StoreUrl:
    """A store URL understood: the backend, what SQLAlchemy is given, the SQLite file."""

    url: str
    backend: str
    """`"sqlite"` or `"postgresql"`."""
    engine_url: Any
    path: Path | None = None

    @property
    def masked(self) -> str:
        return _mask(self.url)


def parse_url(url: str, fail: type[Exception] = StoreFailed) -> StoreUrl:
    """`url` checked and translated (`fail` with a one-line reason for what cannot be served)."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path or path == ":memory:":
            raise fail("the SQLite store needs a file path: sqlite:///path/to/incidents.sqlite3")
        return StoreUrl(url, "sqlite", make_url("sqlite://").set(database=path), Path(path))
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return StoreUrl(url, "postgresql", make_url(url).set(drivername="postgresql+psycopg"))
    raise fail(f"unsupported store URL {_mask(url)!r}: use sqlite:///path or postgresql://...")


class _Transactions:
    """What both the engine-owning and the bound database offer: `tx`, `savepoint`, error mapping."""

    fail: type[Exception]
    name: str
    target: StoreUrl

    @property
    def backend(self) -> str:
        return self.target.backend

    @property
    def masked_url(self) -> str:
        return self.target.masked

    def failure(self, exc: BaseException) -> Exception:
        """The exception to raise for a database error `exc` (already ours: unchanged)."""
        if not isinstance(exc, SQLAlchemyError):
            return exc if isinstance(exc, Exception) else self.fail(str(exc))
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        foreign_key = isinstance(exc, IntegrityError) and "foreign key" in str(orig).lower()
        if foreign_key and issubclass(self.fail, StoreFailed):
            return NotFound(f"{self.name} ({self.masked_url}): {_first_line(orig)}")
        detail = _first_line(orig)
        return self.fail(f"{self.name} ({self.masked_url}): {type(exc).__name__}: {detail}")

    @contextmanager
    def tx(self, write: bool = False) -> Iterator[Connection]:
        raise NotImplementedError  # pragma: no cover

    @contextmanager
    def savepoint(self) -> Iterator[Connection]:
        """A nested transaction inside a bound one (or a whole transaction otherwise)."""
        with self.tx(write=True) as conn:
            yield conn


class Database(_Transactions):
    """An engine on one store URL. Thread-safe; one per opener (store, outbox, history)."""

    def __init__(
        self,
        target: StoreUrl,
        engine: Engine,
        *,
        name: str,
        fail: type[Exception] = StoreFailed,
    ) -> None:
        self.target = target
        self.engine = engine
        self.name = name
        self.fail = fail
        self.closed = False

    @classmethod
    def open(
        cls,
        url: str,
        *,
        name: str = "store",
        fail: type[Exception] = StoreFailed,
        busy_timeout_s: float = 30.0,
        pool_max_size: int = 10,
        connect_timeout_s: float = 10.0,
        statement_timeout_s: float = 30.0,
    ) -> Database:
        """Connect to `url` (at once: an unreachable database fails here, `fail` naming the URL)."""
        target = parse_url(url, fail)
        if target.backend == "sqlite":
            engine = _sqlite_engine(target, busy_timeout_s, fail)
        else:
            engine = create_engine(
                target.engine_url,
                json_serializer=_dumps,
                pool_size=pool_max_size,
                max_overflow=0,
                pool_timeout=connect_timeout_s + statement_timeout_s,
                connect_args={
                    "connect_timeout": max(1, int(connect_timeout_s)),
                    "options": f"-c timezone=UTC -c statement_timeout={int(statement_timeout_s * 1000)}",
                },
            )
        db = cls(target, engine, name=name, fail=fail)
        try:
            with engine.connect():
                pass
        except SQLAlchemyError as exc:
            engine.dispose()
            raise fail(
                f"cannot connect to {target.masked}: {_first_line(getattr(exc, 'orig', exc))}"
            ) from exc
        return db

    @contextmanager
    def tx(self, write: bool = False) -> Iterator[Connection]:
        """One transaction (`write`: SQLite takes the write lock at BEGIN). Commits unless it raises."""
        if self.closed:
            raise self.fail(f"{self.name} ({self.masked_url}) is closed")
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(runbook_write=True)
                with conn.begin():
                    yield conn
        except (SQLAlchemyError, PoolTimeout) as exc:
            raise self.failure(exc) from exc

    def bound(self, conn: Connection) -> BoundDatabase:
        """This database inside the open transaction of `conn` (another layer joins it)."""
        return BoundDatabase(self, conn)

    def close(self) -> None:
        self.closed = True
        self.engine.dispose()


class BoundDatabase(_Transactions):
    """A database inside one open transaction: `tx` joins it, `savepoint` nests in it."""

    def __init__(self, parent: Database, conn: Connection) -> None:
        self.parent = parent
        self.target = parent.target
        self.name = parent.name
        self.fail = parent.fail
        self.conn = conn

    @contextmanager
    def tx(self, write: bool = False) -> Iterator[Connection]:
        yield self.conn  # errors surface where the transaction was begun, which rolls it back

    @contextmanager
    def savepoint(self) -> Iterator[Connection]:
        try:
            with self.conn.begin_nested():
                yield self.conn
        except SQLAlchemyError as exc:
            raise self.failure(exc) from exc


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sqlite_engine(target: StoreUrl, busy_timeout_s: float, fail: type[Exception]) -> Engine:
    if target.path is None:  # pragma: no cover - parse_url always sets it for sqlite
        raise fail(f"{target.masked}: no SQLite file")
    target.path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        target.engine_url,
        json_serializer=_dumps,
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        pool_size=8,
        max_overflow=56,
        pool_timeout=busy_timeout_s,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's `begin` hook below emits BEGIN
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        dbapi_conn.execute("PRAGMA foreign_keys = ON")
        dbapi_conn.execute("PRAGMA synchronous = FULL")
        _set_wal(dbapi_conn, target, busy_timeout_s, fail)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("runbook_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _set_wal(dbapi_conn: Any, target: StoreUrl, busy_timeout_s: float, fail: type[Exception]) -> None:
    # Switching to WAL needs a moment alone with the file; under a crowd of new connections it can be
    # refused with "locked" without waiting, so retry within the busy timeout.
    import sqlite3

    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            dbapi_conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise fail(f"cannot open {target.path}: {exc}") from exc
            time.sleep(0.01)


def dialect_insert(conn: Connection, table: Table) -> Any:
    """`INSERT` with `ON CONFLICT` for the connection's backend (SQLAlchemy has one per dialect)."""
    return dialect_insert_for(conn.dialect.name, table)


def dialect_insert_for(dialect: str, table: Table) -> Any:
    """`INSERT` with `ON CONFLICT` for `dialect` ("sqlite" or "postgresql")."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
