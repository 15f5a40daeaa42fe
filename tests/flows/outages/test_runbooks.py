"""Each P1 runbook and P2 diagnosis with a dependency failing mid-run: Completed, escalated, recorded."""

from __future__ import annotations

from typing import Any

import pytest

from flows.service_down import service_down
from runbook.models import RunbookOutcome
from tasks import runtime

FAST = dict(settle_s=0.0, poll_interval_s=0.05, ready_deadline_s=10.0)


def _escalated(state: Any, dependency: str) -> Any:
    """The run Completed (no traceback), its result escalated naming `dependency`."""
    assert state.is_completed(), state
    result = state.result()
    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert dependency in result.summary
    assert any(e.kind == "outage" and dependency in e.message for e in result.timeline)
    return result


@pytest.mark.parametrize("mode", ["5xx", "refuse"])
def test_service_down_kubernetes_api_down(world, mode: str) -> None:
    world.inject("bad-deploy", ago_min=2)
    world.inject("k8s-api-down", mode=mode)

    result = _escalated(service_down(**FAST, return_state=True), "the Kubernetes API")

    stored = runtime.store().timeline(result.incident_id)
    assert any(e.kind == "outage" for e in stored)
