"""Guards across incidents (issue 13, items 2, 4, 5, 7) against the sandbox world and a real Prefect server:
one remediation per target at a time, a budget per target, undo what made it worse, an approval that
times out after recovery, and a dry run that leaves no incident open."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStateName
from prefect.variables import Variable

import flows.service_down as service_down_module
from flows.guards import target_of
from flows.service_down import service_down
from flows.switch import BY_SERVICE_VARIABLE, MODE_VARIABLE
from flows.targets import target_workload
from runbook.models import ActionStatus, Alert, AlertSource, IncidentRef, RunbookOutcome
from runbook.severity import Severity
from sandbox.testing import wait_for
from sandbox.world import GOOD_IMAGE, IMAGE_REPO
from tasks import runtime

FAST = dict(settle_s=0.0, poll_interval_s=0.05, ready_deadline_s=10.0)
BROKEN_IMAGE = f"{IMAGE_REPO}:v1.2.0-broken"


@pytest.fixture(autouse=True)
def automatic(world: Any) -> None:
    """The switch at `auto` (the Prefect server is the session's: another test may have left it set)."""
    for name in (MODE_VARIABLE, BY_SERVICE_VARIABLE):
        Variable.unset(name)


def _incident(name: str) -> IncidentRef:
    alert = Alert(source=AlertSource.ALERTMANAGER, fingerprint=f"test:{name}", name=name)
    incident, created = runtime.store().open_incident_for(alert, Severity.P1, "test", "service-down")
    assert created
    return IncidentRef(incident_id=incident.id)


def _patches(world: Any) -> list[Any]:
    """The runbooks' PATCHes of the Deployment (the sandbox's own rollouts do not go over HTTP)."""
    return [
        r for r in world.k8s.requests if r.method == "PATCH" and r.path.endswith("/deployments/emotionscare")
    ]


def _api_health(world: Any) -> int:
    return httpx.get(world.service.url + "/api/health", timeout=5).status_code


def _in_thread(name: str, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """service_down in a thread, under this thread's Prefect settings (the API it reports to)."""
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            box["result"] = context.run(lambda: service_down(**kwargs))
        except Exception as exc:  # asserted by the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread, box


def _paused_run(timeout_s: float = 30.0) -> Any:
    def read() -> Any:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=dict(name=FlowRunFilterStateName(any_=["Paused"])))
            )
            return runs[0] if runs else None

    return wait_for(read, timeout_s=timeout_s, interval_s=0.1)


def test_two_incidents_deciding_together_roll_back_once_and_a_third_rollback_asks_a_person(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.inject("bad-deploy", ago_min=2)
    bad = world.revision()
    # Forced: both runs have decided to roll back from the bad revision before either writes.
    both_decided = threading.Barrier(2, timeout=60)
    real = service_down_module.recent_deploys

    def decided(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        both_decided.wait()
        return found

    monkeypatch.setattr(service_down_module, "recent_deploys", decided)
    world.k8s.clear_requests()
    first = _in_thread("probe", incident=_incident("service down"), **FAST)
    second = _in_thread("error-rate", incident=_incident("error rate above 5%"), **FAST)
    for thread, _box in (first, second):
        thread.join(timeout=120)
    results = []
    for _thread, box in (first, second):
        assert "error" not in box, box.get("error")
        results.append(box["result"])

    assert world.live_image() == GOOD_IMAGE and _api_health(world) == 200
    assert world.revision() == bad + 1 and len(_patches(world)) == 1  # ONE rollback in the history
    acted = [r for r in results if r.outcome == RunbookOutcome.ROLLED_BACK]
    waited = [r for r in results if r.outcome != RunbookOutcome.ROLLED_BACK]
    assert len(acted) == 1 and len(waited) == 1, [r.summary for r in results]
    (other,) = waited
    assert other.outcome == RunbookOutcome.RECOVERED, other.summary
    assert f"was held by incident {acted[0].incident_id}" in other.summary
    assert other.summary.endswith("healthy now: nothing written")
    assert not [a for a in other.actions if a.action == "rollback"]
    assert any(e.kind == "lease" and "waiting up to" in e.message for e in other.timeline)
    assert runtime.store().get_lease(target_of(target_workload())) is None  # released after verifying
    monkeypatch.setattr(service_down_module, "recent_deploys", real)

    # A second bad deploy within the hour: the second rollback of the budget (2 per hour) runs ...
    world.inject("bad-deploy", ago_min=1)
    assert service_down(incident=_incident("again"), **FAST).outcome == RunbookOutcome.ROLLED_BACK
    # ... a third within the hour asks a person first; nobody answers: nothing done, escalated.
    monkeypatch.setattr(runtime.settings().safety, "budget_approval_timeout_s", 2)
    world.inject("bad-deploy", ago_min=1)
    revision, patches = world.revision(), len(_patches(world))
    third = service_down(incident=_incident("third"), **FAST)

    assert world.revision() == revision and world.live_image() == BROKEN_IMAGE
    assert len(_patches(world)) == patches  # nothing written
    assert third.outcome == RunbookOutcome.ESCALATED, third.summary
    reason = "budget: 2 automated rollback(s) of prod/deployment/emotionscare in the last 60 min (limit 2"
    asked = [e.message for e in third.timeline if e.kind == "approval"]
    assert asked and asked[0].startswith(reason) and "waiting up to 2s for a person" in asked[0]
    assert reason in third.summary and "nobody approved within 2s; not done" in third.summary
    assert not [a for a in runtime.store().list_actions(third.incident_id) if a.action == "rollback"]


def test_a_rollback_that_makes_it_worse_is_restored_once_and_escalated_with_both_readings(world: Any) -> None:
    world.inject("bad-deploy", ago_min=2)
    world.inject("release-broken")  # the good release crash-loops too: the rollback's rollout fails
    bad = world.revision()
    world.k8s.clear_requests()

    result = service_down(**{**FAST, "ready_deadline_s": 3.0})

    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert world.live_image() == BROKEN_IMAGE  # what the rollback changed is put back ...
    assert world.revision() == bad + 2 and len(_patches(world)) == 2  # ... once: rollback, restore
    statuses = {a.action: a.status for a in result.actions}
    assert statuses == {"rollback": ActionStatus.SUCCEEDED, "restore": ActionStatus.SUCCEEDED}
    assert f"rolled back to revision {bad - 1}, but its rollout failed" in result.summary
    assert "restored what it changed; escalated (before: application: " in result.summary
    assert "; after: " in result.summary
    readings = next(e for e in result.evidence if e.title == "health before and after the change")
    assert readings.data is not None and readings.data["before"] and readings.data["after"]


def test_an_approval_that_times_out_after_the_service_recovered_writes_nothing(world: Any) -> None:
    world.inject("bad-deploy", ago_min=2)
    world.k8s.clear_requests()
    thread, box = _in_thread("approval", require_approval=True, approval_timeout_s=4, **FAST)
    _paused_run()  # decided to roll back, waiting for the team lead
    world.rollout(GOOD_IMAGE, cause="rolled back by a person")  # recovered by other means meanwhile
    wait_for(lambda: _api_health(world) == 200, timeout_s=30)
    revision = world.revision()
    thread.join(timeout=60)

    assert "error" not in box, box.get("error")
    result = box["result"]
    assert result.outcome == RunbookOutcome.RECOVERED, result.summary
    assert result.summary.startswith("nobody approved within 4s and the service recovered meanwhile")
    assert result.summary.endswith("nothing written")
    assert world.revision() == revision and world.live_image() == GOOD_IMAGE
    assert not _patches(world) and not result.actions


def test_a_dry_run_leaves_no_incident_open_and_the_next_real_run_does_not_join_it(world: Any) -> None:
    world.inject("bad-deploy", ago_min=2)

    planned = service_down(dry_run=True, **FAST)

    assert planned.outcome == RunbookOutcome.DRY_RUN
    assert runtime.store().list_incidents(open_only=True) == []
    dry = runtime.store().get_incident(planned.incident_id)
    assert any(e.kind == "plan" for e in dry.timeline)  # the plan is recorded on its own incident
    real = service_down(**FAST)
    assert real.outcome == RunbookOutcome.ROLLED_BACK and real.incident_id != planned.incident_id
