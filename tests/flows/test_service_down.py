"""P1 › Service Completely Down, against the sandbox with the real clients (one test per branch)."""

from __future__ import annotations

import threading

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.service_down import service_down
from runbook.models import ActionStatus, IncidentRef, IncidentStatus, RunbookOutcome
from sandbox.world import GOOD_IMAGE
from tasks import runtime

FAST = dict(settle_s=0.0, poll_interval_s=0.05, ready_deadline_s=10.0)


def _artifacts(flow_run_id) -> list:
    import asyncio

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )

    return asyncio.run(read())


def test_rolls_back_a_bad_deploy_made_2_minutes_ago_and_verifies_health(world) -> None:
    world.inject("bad-deploy", ago_min=2)
    assert httpx.get(world.service.url + "/api/health").status_code == 500
    bad_revision = world.revision()

    state = service_down(**FAST, return_state=True)
    result = state.result()

    assert result.outcome == RunbookOutcome.ROLLED_BACK, result.summary
    assert world.live_image() == GOOD_IMAGE
    assert world.revision() == bad_revision + 1  # undo re-activates the old ReplicaSet as a new revision
    assert httpx.get(world.service.url + "/api/health").status_code == 200
    rollbacks = [a for a in result.actions if a.action == "rollback"]
    assert [a.status for a in rollbacks] == [ActionStatus.SUCCEEDED]
    kinds = [e.kind for e in result.timeline]
    assert kinds.index("assess") < kinds.index("decide") < kinds.index("action") < kinds.index("outcome")
    # the timeline is in the store, and the run published it as a markdown artifact
    stored = runtime.store().timeline(result.incident_id)
    assert [e.message for e in stored if e.kind == "outcome"][-1] == result.timeline[-1].message
    # started by hand and verified healthy: the incident is resolved (nobody else would resolve it)
    assert runtime.store().get_incident(result.incident_id).status == IncidentStatus.RESOLVED
    artifacts = _artifacts(state.state_details.flow_run_id)
    assert any("rolled_back" in (a.data or "") and "## Timeline" in (a.data or "") for a in artifacts)


def test_an_old_deploy_is_not_rolled_back_and_escalates_with_evidence(world) -> None:
    world.inject("bad-deploy", ago_min=120)
    revision = world.revision()

    result = service_down(**FAST)

    assert result.outcome == RunbookOutcome.ESCALATED
    assert world.revision() == revision  # nothing rolled back
    assert not [a for a in result.actions if a.action == "rollback"]
    kinds = {e.kind for e in result.evidence}
    assert {"logs", "events", "sentry", "deploys", "health"} <= kinds
    sentry = next(e for e in result.evidence if e.title.startswith("Sentry: latest event"))
    assert "TypeError" in sentry.content or "Cannot read properties" in sentry.content
    assert "Traceback" in sentry.content
    # escalated: the incident stays open for the people it was escalated to
    assert runtime.store().get_incident(result.incident_id).status != IncidentStatus.RESOLVED


def test_health_refused_is_classified_as_infrastructure(world) -> None:
    world.inject("infra-down")

    result = service_down(**FAST)

    assessment = next(e for e in result.timeline if e.kind == "assess")
    assert assessment.message.startswith("Step 1: infrastructure")
    assert "refused" in assessment.message
    assert result.outcome == RunbookOutcome.ESCALATED  # no recent deploy: investigate and escalate


def test_a_healthy_service_is_left_alone(world) -> None:
    result = service_down(**FAST)
    assert result.outcome == RunbookOutcome.RECOVERED_BY_ITSELF
    assert result.actions == []


def test_running_twice_for_one_incident_rolls_back_once(world) -> None:
    world.inject("bad-deploy", ago_min=2)
    bad_revision = world.revision()

    first = service_down(**FAST)
    ref = IncidentRef(incident_id=first.incident_id)
    world.inject("bad-deploy", ago_min=1)  # the same incident "recurs": a second run must still not act
    second = service_down(incident=ref, **FAST)

    assert first.outcome == RunbookOutcome.ROLLED_BACK
    assert [a.status for a in second.actions if a.action == "rollback"] == [ActionStatus.REFUSED]
    assert world.revision() == bad_revision + 2  # the rollback (+1) and the second bad deploy (+1), no more
    refused = next(e for e in second.timeline if e.kind == "refused")
    assert "already claimed" in refused.message


def test_two_copies_at_once_roll_back_exactly_once(world, monkeypatch) -> None:
    import flows.deploy_correlation
    import flows.rollback

    world.inject("bad-deploy", ago_min=2)
    bad_revision = world.revision()
    first = service_down(dry_run=True, **FAST)  # opens the incident both copies then share
    ref = IncidentRef(incident_id=first.incident_id)
    # Force the race: both copies read the rollout history (and so both decide to roll back) before
    # either acts; the store's claim (or, when the winner already landed, the look again before the
    # write) must then stop the second one.
    both_read = threading.Barrier(2, timeout=30)
    real_facts = flows.deploy_correlation.get_rollout_facts
    waited: set[int] = set()

    def facts_then_wait(target):
        facts = real_facts(target)
        if threading.get_ident() not in waited:  # the decision's read, not the look again
            waited.add(threading.get_ident())
            both_read.wait()
        return facts

    for module in (flows.deploy_correlation, flows.rollback):  # the decision's read and the look again
        monkeypatch.setattr(module, "get_rollout_facts", facts_then_wait)
    results: list = []
    errors: list = []

    def run() -> None:
        try:
            results.append(service_down(incident=ref, **FAST))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    statuses = sorted(a.status.value for r in results for a in r.actions if a.action == "rollback")
    assert statuses in (["refused", "succeeded"], ["succeeded"])
    assert world.revision() == bad_revision + 1
    assert {r.outcome for r in results} == {
        RunbookOutcome.ROLLED_BACK
    }  # the loser verifies the winner's work
    claims = [a for a in runtime.store().list_actions(first.incident_id) if a.action == "rollback"]
    assert len(claims) == 1


def _paused_run(timeout_s: float = 30.0):
    """The service-down run waiting for input, polled from the Prefect API."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStateName

    from sandbox.testing import wait_for

    async def read():
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=dict(name=FlowRunFilterStateName(any_=["Paused"])))
            )
            return runs[0] if runs else None

    import asyncio

    return wait_for(lambda: asyncio.run(read()), timeout_s=timeout_s, interval_s=0.1)


def _run_in_thread(**kwargs):
    box: dict = {}

    def run() -> None:
        box["state"] = service_down(**kwargs, return_state=True)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_an_approval_answered_no_in_the_ui_form_stops_the_rollback(world) -> None:
    from prefect.flow_runs import resume_flow_run

    world.inject("bad-deploy", ago_min=2)
    revision = world.revision()
    thread, box = _run_in_thread(require_approval=True, approval_timeout_s=60, **FAST)

    paused = _paused_run()
    resume_flow_run(paused.id, run_input={"approve": False, "comment": "lead: hot-fix instead"})
    thread.join(timeout=60)

    result = box["state"].result()
    assert box["state"].is_completed()
    assert result.outcome == RunbookOutcome.ESCALATED
    assert world.revision() == revision  # declined: nothing rolled back
    approval = [e.message for e in result.timeline if e.kind == "approval"]
    assert approval[-1] == "answered: approve=False lead: hot-fix instead"


def test_an_approval_answered_yes_rolls_back(world) -> None:
    from prefect.flow_runs import resume_flow_run

    world.inject("bad-deploy", ago_min=2)
    revision = world.revision()
    thread, box = _run_in_thread(require_approval=True, approval_timeout_s=60, **FAST)

    resume_flow_run(_paused_run().id, run_input={"approve": True})
    thread.join(timeout=60)

    assert box["state"].result().outcome == RunbookOutcome.ROLLED_BACK
    assert world.revision() == revision + 1


def test_an_unanswered_approval_takes_the_guides_default_after_its_timeout(world) -> None:
    world.inject("bad-deploy", ago_min=2)
    revision = world.revision()

    state = service_down(require_approval=True, approval_timeout_s=2, **FAST, return_state=True)

    assert state.is_completed()  # the run left Paused and finished normally
    result = state.result()
    assert result.outcome == RunbookOutcome.ROLLED_BACK
    assert world.revision() == revision + 1
    approval = [e.message for e in result.timeline if e.kind == "approval"]
    assert approval[-1] == "no answer in time: the guide's default applies (rollback)"


def test_dry_run_changes_nothing(world) -> None:
    world.inject("bad-deploy", ago_min=2)
    before = (world.revision(), world.live_image(), world.cluster.get("Deployment", "prod", "emotionscare"))

    result = service_down(dry_run=True, **FAST)

    assert result.outcome == RunbookOutcome.DRY_RUN
    after = (world.revision(), world.live_image(), world.cluster.get("Deployment", "prod", "emotionscare"))
    assert after == before
    assert [a.status for a in result.actions] == [ActionStatus.DRY_RUN]
    assert "undo" in result.actions[0].detail


def test_kubernetes_failing_on_the_rollout_history_is_evidence_not_a_crash(world, monkeypatch) -> None:
    import flows.deploy_correlation
    import flows.rollback
    from kubeops import KubernetesUnavailable

    world.inject("bad-deploy", ago_min=2)
    revision = world.revision()

    def unavailable(target):
        raise KubernetesUnavailable("GET replicasets: connection refused")

    for module in (flows.deploy_correlation, flows.rollback):
        monkeypatch.setattr(module, "get_rollout_facts", unavailable)
    result = service_down(**FAST)

    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    notes = [e.message for e in result.timeline]
    assert "rollout history unavailable: GET replicasets: connection refused" in notes
    assert not [a for a in result.actions if a.action == "rollback"]
    assert world.revision() == revision  # nothing rolled back on a history we could not read
    assert any(e.kind == "logs" for e in result.evidence)  # investigated instead
