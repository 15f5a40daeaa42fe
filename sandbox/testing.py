"""pytest helpers for the sandbox: worlds for tests, the runbooks pointed at them, and `wait_for`.

Usage::

    # a conftest.py: import the fixtures you want (importing registers them)
    from sandbox.testing import sandbox_postgres, sandbox_shared_world, sandbox_world  # noqa: F401

    def test_rollback(sandbox_world):                  # a fresh world, RUNBOOK_* set for this test
        sandbox_world.inject("bad-deploy", ago_min=2)
        wait_for(lambda: httpx.get(sandbox_world.service.url + "/api/health").status_code == 500)

    def test_many(sandbox_shared_world):               # one world per session, reset() to healthy first

Costs (this machine, measured by tests/sandbox/test_world.py): a fresh world on the session's
PostgreSQL server about 0.3 s; a world with its own PostgreSQL (initdb included) about 1 s; `reset()`
of the shared world a few tens of milliseconds.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sandbox.postgres import EmbeddedPostgres
from sandbox.world import World

__all__ = [
    "TEST_WORLD",
    "running_world",
    "sandbox_postgres",
    "sandbox_shared_world",
    "sandbox_shared_world_session",
    "sandbox_world",
    "settings_env",
    "wait_for",
]

T = TypeVar("T")

# Timings for tests: fast syncs, resource steps at every sync (step_interval_s 0), short pool waits.
TEST_WORLD: dict[str, Any] = {
    "tick_interval_s": 0.02,
    "sync_interval_s": 0.05,
    "step_interval_s": 0,
    "db_acquire_timeout_s": 0.3,
    "db_open_wait_s": 0.5,
}


def wait_for(predicate: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.02) -> T:
    """Poll `predicate` until it returns something truthy (returned) or the deadline passes
    (AssertionError naming the predicate)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {predicate}")
        time.sleep(interval_s)


@contextmanager
def settings_env(world: World) -> Iterator[None]:
    """`world.settings_env()` in os.environ for the duration (the runbooks' cached settings dropped
    on the way in and out); the previous values restored after."""
    env = world.settings_env()
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    _reset_runtime()
    try:
        yield
    finally:
        _reset_runtime()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _reset_runtime() -> None:
    runtime = sys.modules.get("tasks.runtime")
    if runtime is not None:  # not imported yet: no settings cached to drop (and no Prefect import to pay)
        runtime.reset()


@contextmanager
def running_world(postgres: EmbeddedPostgres | None = None, **kwargs: Any) -> Iterator[World]:
    """A started world (on `postgres` when given: a database of its own there) whose RUNBOOK_*
    settings are in os.environ for the duration; everything stopped and undone after."""
    world = World(postgres=postgres, **{**TEST_WORLD, **kwargs}).start()
    try:
        with settings_env(world):
            yield world
    finally:
        world.stop()


@pytest.fixture(scope="session")
def sandbox_postgres() -> Iterator[EmbeddedPostgres]:
    """One PostgreSQL server for the session's worlds (each world creates its own database)."""
    pg = EmbeddedPostgres(data_dir=Path(tempfile.mkdtemp(prefix="sandbox-pg-")))
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def sandbox_world(sandbox_postgres: EmbeddedPostgres) -> Iterator[World]:
    """A fresh world for one test, the runbooks' settings pointed at it."""
    with running_world(postgres=sandbox_postgres) as world:
        yield world


@pytest.fixture(scope="session")
def sandbox_shared_world_session(sandbox_postgres: EmbeddedPostgres) -> Iterator[World]:
    world = World(postgres=sandbox_postgres, **TEST_WORLD).start()
    try:
        yield world
    finally:
        world.stop()


@pytest.fixture
def sandbox_shared_world(sandbox_shared_world_session: World) -> Iterator[World]:
    """The session's one world, `reset()` to healthy and empty before the test, settings in os.environ."""
    world = sandbox_shared_world_session
    world.reset()
    with settings_env(world):
        yield world
