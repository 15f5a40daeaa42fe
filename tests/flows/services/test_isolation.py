"""Issue 12's acceptance: a fault on service B, an incident on service A → A's run (each of the four P1
runbooks and the three P2 diagnoses) sees A healthy and changes nothing anywhere; and the same swapped.

Counted, not assumed: every write (POST, PUT, PATCH, DELETE) received by each cluster's Kubernetes API
emulator, each service and each external API while A's run ran must be none, B must not be read at all
(no request to its namespace, none to its endpoints), and B's fault must still be there afterwards.
One world for the file (cleared between cases): the cases differ only in the fault and the flow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flows.database_lost import database_lost
from flows.error_rate_spike import error_rate_spike
from flows.external_api_failure import external_api_failure
from flows.feature_broken import feature_broken
from flows.performance_degradation import performance_degradation
from flows.resource_exhaustion import resource_exhaustion
from flows.service_down import service_down
from runbook.models import IncidentRef, RunbookOutcome
from runbook.severity import Severity
from sandbox.postgres import EmbeddedPostgres
from sandbox.testing import TEST_WORLD, settings_env
from sandbox.world import World
from tasks import runtime

from .support import all_requests, clear_requests, writes

FAST = {"poll_interval_s": 0.05, "ready_deadline_s": 10.0}
DIAGNOSIS = {**FAST, "window_s": 60.0}

# runbook → (the flow, its options, the fault put on B, the level of A's incident)
CASES: dict[str, tuple[Callable[..., Any], dict[str, Any], tuple[str, dict[str, Any]], Severity]] = {
    "service-down": (service_down, {**FAST, "settle_s": 0.0}, ("bad-deploy", {"ago_min": 2}), Severity.P1),
    "database-lost": (
        database_lost,
        {**FAST, "verify_deadline_s": 2.0, "db_restart_deadline_s": 5.0},
        ("db-pool-exhausted", {}),  # its own pool (db-pool-stale restarts the shared server)
        Severity.P1,
    ),
    # the guide scales up whatever it sees; asked for no more replicas than A runs, it changes nothing
    "resource-exhaustion": (
        resource_exhaustion,
        {**FAST, "replicas": 1, "verify_deadline_s": 2.0},
        ("memory-leak", {}),
        Severity.P1,
    ),
    "external-api-failure": (
        external_api_failure,
        {"poll_interval_s": 0.05, "recovery_deadline_s": 2.0},
        ("api-down", {"api": "hume"}),
        Severity.P1,
    ),
    "error-rate-spike": (error_rate_spike, DIAGNOSIS, ("error-rate", {"pct": 8}), Severity.P2),
    "performance-degradation": (
        performance_degradation,
        {"poll_interval_s": 0.05, "samples": 2, "sample_interval_s": 0.05, "window_s": 60.0},
        ("slow-query", {}),
        Severity.P2,
    ),
    "feature-broken": (feature_broken, DIAGNOSIS, ("journal-broken", {}), Severity.P2),
}
PAIRS = [("emotionscare", "payments"), ("payments", "emotionscare")]  # (incident on A, fault on B)
CHANGED = {RunbookOutcome.ROLLED_BACK, RunbookOutcome.RECOVERED}


@pytest.fixture(scope="module")
def many(prefect_api: str, pg_server: EmbeddedPostgres) -> Iterator[World]:
    world = World(services="many", postgres=pg_server, **{**TEST_WORLD, "step_interval_s": 0}).start()
    try:
        with settings_env(world):
            yield world
    finally:
        world.stop()


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=["A=emotionscare,B=payments", "A=payments,B=emotionscare"])
@pytest.mark.parametrize("runbook", list(CASES))
def test_a_fault_on_b_leaves_a_healthy_and_nothing_changed(many: World, runbook: str, a: str, b: str) -> None:
    flow, options, (fault, args), level = CASES[runbook]
    many.reset()  # healthy, baseline Deployments, pools reset: what one case did is gone
    if fault == "api-down" and not runtime.catalogue().service(b).external_apis:
        fault, args = "bad-deploy", {"ago_min": 2}  # B has no API to lose: B is broken another way
    many.inject(fault, service=b, **args)
    before = many.status()["services"][b]["active_faults"]
    clear_requests(many)

    result = flow(incident=IncidentRef(service=a, severity=level, summary=f"{runbook} on {a}"), **options)

    assert result.outcome not in CHANGED, result.summary
    assert not [x for x in result.actions if x.status.value in ("succeeded", "failed")], result.actions
    changed = writes(many)
    assert changed == {name: [] for name in changed}, changed
    seen = all_requests(many)
    unit = many.unit(b)
    assert seen[f"service:{b}"] == [], seen[f"service:{b}"]
    assert not [line for lines in seen.values() for line in lines if f"/namespaces/{unit.namespace}/" in line]
    assert many.status()["services"][b]["active_faults"] == before  # B's fault is B's, untouched
