"""Flows run in this process against the sandbox world, recorded by the session's Prefect server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def world(prefect_api: str, sandbox_world: Any) -> Iterator[Any]:
    """The sandbox world, with the Prefect server up (flows report to it)."""
    yield sandbox_world


def _snapshot(world: Any) -> dict[str, Any]:
    """Everything a runbook could change in the sandbox, to compare before and after a dry run."""
    dep = world.deployment()
    return {
        "spec": dep["spec"],
        "generation": dep["metadata"].get("generation"),
        "revision": world.revision(),
        "replica_sets": sorted(rs["metadata"]["name"] for rs in world.cluster.list("ReplicaSet", "prod")),
        "pool_generation": world.service.db.generation,
        "notifications": list(world.service.notifications),
        "postgres": world.postgres.running,
        "faults": world.active_faults(),
    }


@pytest.fixture
def sandbox_state(world: Any) -> Any:
    """`sandbox_state()`: the world's changeable state now (see `_snapshot`)."""
    return lambda: _snapshot(world)
