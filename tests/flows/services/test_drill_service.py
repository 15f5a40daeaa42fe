"""Drills take a service: a drill of `search` (cluster west) breaks, watches, answers and rolls back search,
and nothing of emotionscare or payments (cluster east)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flows.drills import drill_high_error_rate
from runbook.drills import DrillStatus
from tasks import runtime
from tasks.drill_targets import WorldTarget, register_target

from .support import WRITES, World, requests_of

FAST = {
    "poll_interval_s": 0.05,
    "detect_deadline_s": 20.0,
    "recover_deadline_s": 60.0,
    "post_to_slack": False,
}


@pytest.fixture
def target(many_world: World) -> Iterator[World]:
    unregister = register_target(WorldTarget(many_world))
    try:
        yield many_world
    finally:
        unregister()


def test_a_drill_of_one_service_acts_on_that_service_only(target: World) -> None:
    world = target
    search, east = world.unit("search"), world.clusters["east"]
    revisions = {name: world.unit(name).revision() for name in ("emotionscare", "payments")}
    east.clear_requests()

    result = drill_high_error_rate(
        service="search", **FAST, runbook_parameters={"settle_s": 0, "poll_interval_s": 0.05}
    )

    assert result.status == DrillStatus.PASSED, (result.reason, result.runbook_error, result.improvements)
    assert result.runbook_outcome == "rolled_back"
    assert runtime.store().get_incident(result.incident_id).service == "search"
    assert search.revision() >= 3 and search.live_image().endswith("v1.1.0")  # broken, then rolled back
    assert {name: world.unit(name).revision() for name in revisions} == revisions
    assert not [line for line in requests_of(east) if line[0] in WRITES]
