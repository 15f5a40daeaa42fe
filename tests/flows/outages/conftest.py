"""Outage fixtures: the sandbox world with its incident store on the world's PostgreSQL (so `store-down`
can take it away), and the runbooks' Prefect API behind a gate (so `prefect-api-down` can)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from sandbox.faults import outages
from sandbox.faults.gate import Gate
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


@pytest.fixture
def gated(world: Any, prefect_api: str) -> Iterator[Gate]:
    """The runbooks' Prefect API behind a gate (`prefect-api-down` works), client retries cut to 2."""
    gate = Gate(prefect_api).start()
    detach = outages.attach_prefect(world, gate)
    try:
        with temporary_settings(updates={PREFECT_API_URL: gate.url, PREFECT_CLIENT_MAX_RETRIES: 2}):
            try:
                yield gate
            finally:
                # The API is back: deliver what the background workers held (no minute-long exit).
                world.clear("prefect-api-down")
                EventsWorker.drain_all(timeout=30)
                APILogWorker.drain_all(timeout=30)
    finally:
        detach()
        gate.stop()
