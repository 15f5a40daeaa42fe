"""Flows run in this process against the sandbox world, recorded by the session's Prefect server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def world(prefect_api: str, sandbox_world: object) -> Iterator[object]:
    """The sandbox world, with the Prefect server up (flows report to it)."""
    yield sandbox_world
