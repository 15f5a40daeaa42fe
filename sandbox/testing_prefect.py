"""A full `prefect server start` for the tests that need more than the session's test harness.

Usage (in a module-scoped fixture)::

    with prefect_server(tmp_path_factory.mktemp("prefect-ui")) as base:     # SQLite in its PREFECT_HOME
        yield base                                                          # http://127.0.0.1:PORT
    with prefect_server(home, database_url=dsn, extra_env=...) as base:     # on the session's PostgreSQL
        yield f"{base}/api"

The harness (`prefect_test_harness()`) serves the API only: no UI, and no triggers or actions services,
so a test of the UI or of an automation starts the real server, with its services, on 127.0.0.1 and a
free port. It is ready when `/api/ready` answers 200 (polled with a deadline), and stopped with its
process group (SIGTERM, then SIGKILL after 30 s). `prefect_env` and `stop_group` serve the tests'
other Prefect processes (runners, the CLI) the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from sandbox.ports import free_port
from sandbox.testing import wait_for

__all__ = ["PREFECT", "post_until_not_503", "prefect_env", "prefect_server", "stop_group"]

PREFECT = str(Path(sys.executable).with_name("prefect"))
"""The `prefect` CLI of this environment."""


def prefect_env(api: str, home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without its PREFECT_* settings, pointed at `api` with `home` as
    PREFECT_HOME, analytics off, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **extra,
    }


def post_until_not_503(url: str, body: Any, timeout_s: float = 60.0) -> httpx.Response:
    """POST `body` to a Prefect API `url` again while it answers 503, as Prefect's own client does (a 503
    is "retry": nothing was written). The answer that was not a 503; AssertionError after `timeout_s`.

    Tests that post raw requests need it: the session's test-harness server runs on SQLite, where
    Prefect's own services hold the write lock at times and a run's creation is answered 503
    ("database is locked"); CI18 failed once on one."""
    answers: list[httpx.Response] = []

    def answered() -> bool:
        answers.append(httpx.post(url, json=body, timeout=30))
        return answers[-1].status_code != 503

    wait_for(answered, timeout_s=timeout_s, interval_s=0.5)
    return answers[-1]


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started with `start_new_session=True`, and its children: SIGTERM to the group,
    SIGKILL when it has not ended 30 s later. Nothing when it has ended already."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextmanager
def prefect_server(
    home: Path,
    *,
    database_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    startup_timeout_s: float = 120.0,
) -> Iterator[str]:
    """`prefect server start` (API, UI and services) on 127.0.0.1 and a free port, its log in
    `home/server.log`; yields its base URL once `/api/ready` answers 200, stops it on exit.

    `database_url`: PREFECT_API_DATABASE_CONNECTION_URL (default: SQLite in `home`). A server that
    exits while starting (or is not ready in time) fails the caller: AssertionError, with the end of
    its log."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = prefect_env(f"{base}/api", home, **dict(extra_env or {}))
    if database_url is not None:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    with open(home / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/api/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(lambda: ready() or proc.poll() is not None, timeout_s=startup_timeout_s, interval_s=0.3)
        if proc.poll() is not None:
            raise AssertionError(f"prefect server start exited ({proc.returncode}):\n" + _tail(home))
        yield base
    finally:
        stop_group(proc)


def _tail(home: Path) -> str:
    return (home / "server.log").read_text(errors="replace")[-3000:]
