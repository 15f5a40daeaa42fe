"""Each P1 runbook and P2 diagnosis with a dependency failing: Completed (no traceback), escalated with
the dependency named, the escalation recorded (timeline, artifact; the hand-over when run alone)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.database_lost import database_lost
from flows.error_rate_spike import error_rate_spike
from flows.external_api_failure import external_api_failure
from flows.feature_broken import feature_broken
from flows.performance_degradation import performance_degradation
from flows.resource_exhaustion import resource_exhaustion
from flows.service_down import service_down
from runbook.models import RunbookOutcome
from tasks import runtime

FAST = dict(settle_s=0.0, poll_interval_s=0.05, ready_deadline_s=10.0)


def escalated(state: Any, dependency: str) -> Any:
    """The run Completed, its result escalated with `dependency` named in the summary and the timeline."""
    assert state.is_completed(), state
    result = state.result()
    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert dependency in result.summary
    assert any(e.kind == "outage" and dependency in e.message for e in result.timeline)
    return result


def artifacts(state: Any) -> list[str]:
    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
                )
            )

    return [a.data or "" for a in asyncio.run(read())]


@pytest.mark.parametrize("mode", ["5xx", "refuse"])
def test_resource_exhaustion_kubernetes_api_down_escalates(world, mode: str) -> None:
    world.inject("memory-leak")
    world.inject("k8s-api-down", mode=mode)

    state = resource_exhaustion(
        ready_deadline_s=10.0, verify_deadline_s=5.0, poll_interval_s=0.05, return_state=True
    )

    result = escalated(state, "the Kubernetes API")
    stored = runtime.store().timeline(result.incident_id)
    assert [e for e in stored if e.kind == "outage"], "the escalation is in the incident's timeline"
    assert any("escalated" in a and "## Timeline" in a for a in artifacts(state))
    # run alone (not under respond): the hand-over happened in Slack and PagerDuty
    assert any("stopped" in m["text"] for m in world.slack.all_messages("incidents"))
    assert [r.json()["event_action"] for r in world.pagerduty.requests] == ["trigger"]


def test_service_down_kubernetes_api_down_never_fails(world) -> None:
    world.inject("bad-deploy", ago_min=2)
    world.inject("k8s-api-down", mode="5xx")

    state = service_down(**FAST, return_state=True)

    assert state.is_completed(), state
    result = state.result()
    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert any("API server is unavailable" in e.message for e in result.timeline)


def test_slack_and_pagerduty_down_too_the_escalation_still_ends(world) -> None:
    world.inject("memory-leak")
    for fault in ("k8s-api-down", "slack-down", "pagerduty-down"):
        world.inject(fault, mode="refuse")

    state = resource_exhaustion(
        ready_deadline_s=10.0, verify_deadline_s=5.0, poll_interval_s=0.05, return_state=True
    )

    escalated(state, "the Kubernetes API")
    assert any("escalated" in a for a in artifacts(state))  # the artifact is the record left


RUNBOOKS = {
    "service-down": (service_down, FAST),
    "database-lost": (database_lost, {}),
    "resource-exhaustion": (resource_exhaustion, {}),
    "external-api-failure": (external_api_failure, {}),
    "error-rate-spike": (error_rate_spike, {}),
    "feature-broken": (feature_broken, {}),
    "performance-degradation": (performance_degradation, {}),
}


@pytest.mark.parametrize("name", list(RUNBOOKS))
def test_incident_store_down_every_runbook_escalates(pg_store_world, name: str) -> None:
    world = pg_store_world
    world.inject("store-down")
    runbook, options = RUNBOOKS[name]

    state = runbook(**options, return_state=True)

    result = escalated(state, "the incident store")
    assert result.incident_id is None  # no incident could be opened
    assert any(
        name in m["text"] and "incident store" in m["text"] for m in world.slack.all_messages("incidents")
    )
    assert [r.json()["event_action"] for r in world.pagerduty.requests] == ["trigger"]
