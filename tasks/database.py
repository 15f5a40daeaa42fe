"""Database connectivity (psycopg 3): `psql -h $DB_HOST -U $DB_USER -d emotionscare -c "SELECT 1"`.

Usage::

    check = check_database.fn(dsn, connect_timeout_s=5)
    check.ok, check.failure      # DbFailure.REFUSED | AUTH | TIMEOUT | ...

Refused, authentication failure and timeout are told apart because the guide's options differ:
a refused connection is what the pool reset and pool-size options address; bad credentials are a
configuration problem no restart fixes; a timeout points at the network or an overloaded server.
The DSN is a secret (it may hold a password): it is never logged or put in the result.
"""

from __future__ import annotations

import time
from enum import StrEnum

import psycopg
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, SecretStr

from runbook.errors import RunbookError

__all__ = [
    "DatabaseRestartFailed",
    "DbCheck",
    "DbFailure",
    "check_database",
    "classify_db_error",
    "probe_database",
    "restart_supabase_project",
    "wait_for_database",
]


class DbFailure(StrEnum):
    NONE = "none"
    REFUSED = "refused"
    AUTH = "auth"
    TIMEOUT = "timeout"
    NOT_FOUND = "database_not_found"
    ERROR = "error"


class DbCheck(BaseModel):
    """The answer to `SELECT 1`."""

    ok: bool
    failure: DbFailure = DbFailure.NONE
    latency_ms: float
    host: str = ""
    detail: str = ""


def classify_db_error(exc: psycopg.Error) -> DbFailure:
    """Tell refused, auth and timeout apart from libpq's message (psycopg has one class for all)."""
    text = str(exc).lower()
    if "password authentication failed" in text or "no pg_hba.conf entry" in text or "role" in text:
        return DbFailure.AUTH
    if "does not exist" in text and "database" in text:
        return DbFailure.NOT_FOUND
    if "timeout" in text or "timed out" in text:
        return DbFailure.TIMEOUT
    if "refused" in text or "could not connect" in text or "server closed the connection" in text:
        return DbFailure.REFUSED
    if "the database system is starting up" in text or "shutting down" in text:
        return DbFailure.REFUSED
    return DbFailure.ERROR


def _host_of(dsn: str) -> str:
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return ""
    return f"{info.get('host', '')}:{info.get('port', '5432')}"


def probe_database(dsn: str, connect_timeout_s: float = 5.0) -> DbCheck:
    """Connect and run `SELECT 1` once; a failure is the answer, not an exception."""
    start = time.perf_counter()
    host = _host_of(dsn)
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, round(connect_timeout_s)), autocommit=True) as conn:
            row = conn.execute("SELECT 1").fetchone()
        ok = row == (1,)
        return DbCheck(
            ok=ok,
            failure=DbFailure.NONE if ok else DbFailure.ERROR,
            latency_ms=(time.perf_counter() - start) * 1000,
            host=host,
        )
    except psycopg.Error as exc:
        # libpq repeats the DSN's host in its message, never the password; keep the first line only.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DbCheck(
            ok=False,
            failure=classify_db_error(exc),
            latency_ms=(time.perf_counter() - start) * 1000,
            host=host,
            detail=first[:300],
        )


@task(name="check_database", cache_policy=NO_CACHE)
def check_database(dsn: SecretStr, connect_timeout_s: float = 5.0) -> DbCheck:
    """`psql -c "SELECT 1"`: can the database be reached? (refused vs auth vs timeout)."""
    return probe_database(dsn.get_secret_value(), connect_timeout_s)


@task(name="restart_supabase_project", cache_policy=NO_CACHE)
def restart_supabase_project(
    api_url: str, project_ref: str, token: SecretStr, timeout_s: float = 30.0
) -> int:
    """Option 3, hosted: Supabase Management API `POST /v1/projects/{ref}/restart`. Never retried."""
    from tasks.clients import new_http_client

    url = f"{api_url.rstrip('/')}/v1/projects/{project_ref}/restart"
    with new_http_client(timeout_s) as http:
        response = http.post(url, headers={"Authorization": f"Bearer {token.get_secret_value()}"})
    if response.status_code >= 400:
        raise DatabaseRestartFailed(
            f"Supabase restart of {project_ref}: HTTP {response.status_code} {response.text[:200]}"
        )
    return response.status_code


class DatabaseRestartFailed(RunbookError):
    """The provider refused or failed the restart."""


@task(name="wait_for_database", cache_policy=NO_CACHE)
def wait_for_database(
    dsn: SecretStr, deadline_s: float, poll_interval_s: float, connect_timeout_s: float = 5.0
) -> DbCheck:
    """`SELECT 1` until it answers or the deadline passes (bounded); returns the last check."""
    deadline = time.monotonic() + deadline_s
    while True:
        check = probe_database(dsn.get_secret_value(), connect_timeout_s)
        if check.ok or time.monotonic() + poll_interval_s > deadline:
            return check
        time.sleep(poll_interval_s)
