"""P1 › CPU/Memory Exhaustion scales up within the service's catalogue bound (`kubernetes.replicas.max`),
and says in the timeline when the bound limits it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.resource_exhaustion import resource_exhaustion
from runbook.models import RunbookOutcome
from tasks import runtime

FAST = dict(ready_deadline_s=15.0, verify_deadline_s=5.0, poll_interval_s=0.05)


@pytest.fixture
def bounded(world: Any, tmp_path: Path) -> Iterator[Any]:
    """`bounded(most)`: the world's service in a catalogue file (RUNBOOK_CATALOGUE) with replicas max `most`."""
    saved = os.environ.get("RUNBOOK_CATALOGUE")

    def write(most: int) -> None:
        service = runtime.base_settings().service.name
        entry = {
            "name": service,
            "team": "default",
            "kubernetes": {
                "cluster": world.k8s.url,
                "namespace": "prod",
                "deployment": "emotionscare",
                "replicas": {"min": 1, "max": most},
            },
            "health": {"base_url": world.service.url},
        }
        path = tmp_path / "catalogue.yaml"
        path.write_text(yaml.safe_dump({"services": [entry]}), encoding="utf-8")
        os.environ["RUNBOOK_CATALOGUE"] = str(path)
        runtime.reset()

    try:
        yield write
    finally:
        if saved is None:
            os.environ.pop("RUNBOOK_CATALOGUE", None)
        else:
            os.environ["RUNBOOK_CATALOGUE"] = saved
        runtime.reset()


@pytest.mark.parametrize(("most", "expected"), [(4, 4), (2, 2)])
def test_the_scale_up_stops_at_the_catalogues_max_and_says_so(
    world, bounded, most: int, expected: int
) -> None:
    world.inject("memory-leak")
    assert world.deployment()["spec"]["replicas"] == 2
    bounded(most)

    result = resource_exhaustion(replicas=6, **FAST)

    assert result.outcome in (RunbookOutcome.MITIGATED, RunbookOutcome.ESCALATED), result.summary
    assert world.deployment()["spec"]["replicas"] == expected  # never past the bound, never below 2
    notes = [e.message for e in result.timeline if e.kind == "decide"]
    assert any(f"bound for emotionscare is {most} replicas: scaling to {expected}, not 6" in n for n in notes)
    if expected == 2:
        assert not result.actions  # already at the bound: nothing written
    else:
        assert [a.action for a in result.actions] == ["scale"]
