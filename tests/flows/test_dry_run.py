"""`dry_run=True` on every runbook: the plan is recorded and logged, nothing in the sandbox changes."""

from __future__ import annotations

import time

import pytest

from flows.database_lost import database_lost
from flows.external_api_failure import external_api_failure
from flows.resource_exhaustion import resource_exhaustion
from flows.service_down import service_down
from runbook.models import ActionStatus, RunbookOutcome
from sandbox.testing import wait_for
from tasks import runtime

CASES = {
    "service_down": (("bad-deploy", None, {"ago_min": 2}), service_down, {"settle_s": 0}),
    "database_lost/pool": (("db-pool-stale", None, {}), database_lost, {"verify_deadline_s": 1}),
    "database_lost/db-down": (("db-down", None, {}), database_lost, {"verify_deadline_s": 1}),
    "resource_exhaustion": (("memory-leak", None, {}), resource_exhaustion, {}),
    "external_api_failure": (
        ("api-down", "hume", {"mode": "5xx"}),
        external_api_failure,
        {"recovery_deadline_s": 1},
    ),
}


def _settled(world):
    """True once the fault's rollout is over and the service has built its pool for it: the pool
    generation stays the same across 0.2 s (the service builds it from a background thread)."""
    seen: dict[str, float] = {}

    def check() -> bool:
        dep = world.deployment()
        status, want = dep.get("status") or {}, dep["spec"]["replicas"]
        if not (
            status.get("observedGeneration") == dep["metadata"]["generation"]
            and status.get("updatedReplicas") == want == status.get("replicas")
        ):
            return False
        generation, now = world.service.db.generation, time.monotonic()
        if seen.get("generation") != generation:
            seen.update(generation=generation, since=now)
            return False
        return now - seen["since"] >= 0.2

    return check


@pytest.mark.parametrize("case", sorted(CASES))
def test_dry_run_changes_nothing(world, sandbox_state, case) -> None:
    (fault, arg, args), runbook, params = CASES[case]
    world.inject(fault, arg, **args)
    wait_for(_settled(world), timeout_s=30)  # a fault's own rollout is over before we look
    before = sandbox_state()

    result = runbook(dry_run=True, poll_interval_s=0.05, **params)

    assert sandbox_state() == before
    assert result.outcome == RunbookOutcome.DRY_RUN, result.summary
    assert result.actions, "a dry run still records its plan"
    assert {a.status for a in result.actions} == {ActionStatus.DRY_RUN}
    assert all(a.detail for a in result.actions)  # the plan says what it would do
    # recorded for the incident, yet claims nothing: a real run afterwards may act
    stored = runtime.store().list_actions(result.incident_id)
    assert {a.status for a in stored} <= {ActionStatus.DRY_RUN}
