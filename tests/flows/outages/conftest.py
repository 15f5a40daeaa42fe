"""Outage fixtures: the sandbox world with its incident store on the world's PostgreSQL (so `store-down`
can take it away), and what every outage test asserts about the run's end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.faults import outages
from tasks import runtime


@pytest.fixture
def pg_store_world(world: Any) -> Iterator[Any]:
    """`world`, its runbooks' incident store a PostgreSQL database (dropped after)."""
    saved = os.environ.get("RUNBOOK_STORE_URL")
    os.environ["RUNBOOK_STORE_URL"] = outages.postgres_store(world)
    runtime.reset()
    try:
        yield world
    finally:
        world.clear()
        runtime.reset()
        if saved is None:
            os.environ.pop("RUNBOOK_STORE_URL", None)
        else:
            os.environ["RUNBOOK_STORE_URL"] = saved
        outages.drop_postgres_store(world)
