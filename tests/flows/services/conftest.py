"""The world of several services (sandbox/world.py, `services="many"`), its settings and catalogue in the
environment, with the session's Prefect server up (flows report to it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.postgres import EmbeddedPostgres
from sandbox.testing import running_world


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """The session's Prefect server (tests/conftest.py's), allowed 4 minutes to start: on a machine busy
    with other test runs its start has taken more than the default minute."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=240),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def many_world(prefect_api: str, pg_server: EmbeddedPostgres) -> Iterator[Any]:
    with running_world(postgres=pg_server, services="many", step_interval_s=0) as world:
        yield world
