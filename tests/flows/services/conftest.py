"""The world of several services (sandbox/world.py, `services="many"`), its settings and catalogue in the
environment, with the session's Prefect server up (flows report to it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.postgres import EmbeddedPostgres
from sandbox.testing import running_world


@pytest.fixture
def many_world(prefect_api: str, pg_server: EmbeddedPostgres) -> Iterator[Any]:
    with running_world(postgres=pg_server, services="many", step_interval_s=0) as world:
        yield world
