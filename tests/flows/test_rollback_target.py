"""Rollback to a known-good revision, on fresh facts (issue 13, items 3 and 7), against the sandbox world
with a real Prefect server: two incidents deciding to roll back end with one rollback; a release
deployed again reads as deployed when it became live; the write waits for nobody's stale decision."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx

from flows.service_down import service_down
from runbook.models import Alert, AlertSource, IncidentRef, RunbookOutcome
from runbook.severity import Severity
from sandbox.testing import wait_for
from sandbox.world import GOOD_IMAGE, IMAGE_REPO
from tasks import runtime

FAST = dict(settle_s=0.0, poll_interval_s=0.05, ready_deadline_s=10.0)
BROKEN_IMAGE = f"{IMAGE_REPO}:v1.2.0-broken"


def _incident(name: str) -> IncidentRef:
    """An incident of its own (its own alert fingerprint): its action claims are not another's."""
    alert = Alert(source=AlertSource.ALERTMANAGER, fingerprint=f"test:{name}", name=name)
    incident, created = runtime.store().open_incident_for(alert, Severity.P1, "test", "service-down")
    assert created
    return IncidentRef(incident_id=incident.id)


def _rollback_patches(world) -> list:
    """The runbooks' PATCHes of the Deployment (the sandbox's own rollouts do not go over HTTP)."""
    return [
        r for r in world.k8s.requests if r.method == "PATCH" and r.path.endswith("/deployments/emotionscare")
    ]


def _api_health(world) -> int:
    return httpx.get(world.service.url + "/api/health", timeout=5).status_code


def test_two_incidents_that_both_decide_to_roll_back_roll_back_once(world, monkeypatch) -> None:
    import flows.deploy_correlation
    import flows.rollback

    world.inject("bad-deploy", ago_min=2)
    bad = world.revision()
    probe_incident, error_rate_incident = _incident("service down"), _incident("error rate above 5%")
    # Forced in sequence: the second incident reads the rollout history (and decides to roll back from
    # the bad revision) first, then waits until the first incident's run has rolled back and verified.
    second_decided, first_done = threading.Event(), threading.Event()
    real_facts = flows.deploy_correlation.get_rollout_facts

    def facts(target):
        value = real_facts(target)
        if threading.current_thread().name == "second" and not second_decided.is_set():
            second_decided.set()
            assert first_done.wait(120)
        return value

    for module in (flows.deploy_correlation, flows.rollback):  # the decision's read and the look again
        monkeypatch.setattr(module, "get_rollout_facts", facts)
    world.k8s.clear_requests()
    box: dict = {}

    def run_second() -> None:
        try:
            box["result"] = service_down(incident=error_rate_incident, **FAST)
        except Exception as exc:  # asserted below
            box["error"] = exc

    second_run = threading.Thread(target=run_second, name="second")
    second_run.start()
    assert second_decided.wait(60)
    first = service_down(incident=probe_incident, **FAST)
    first_done.set()
    second_run.join(timeout=120)
    assert "error" not in box, box.get("error")
    second = box["result"]

    good = bad - 1
    assert first.outcome == RunbookOutcome.ROLLED_BACK, first.summary
    assert first.summary == f"rolled back to revision {good}; health verified"
    assert world.live_image() == GOOD_IMAGE and _api_health(world) == 200
    assert world.revision() == bad + 1  # one rollback in the rollout history
    assert len(_rollback_patches(world)) == 1
    assert second.outcome == RunbookOutcome.ROLLED_BACK, second.summary
    assert second.summary.startswith(
        f"already rolled back to revision {good} (live again as revision {bad + 1})"
    )
    assert "nothing written" in second.summary
    assert not [a for a in second.actions if a.action == "rollback"]  # no claim, no write
    # the second run decided from the bad revision: its plan named it, and its timeline says why it held off
    decided = [e.message for e in second.timeline if e.kind == "decide"]
    assert f"revision {bad} → {good}" in decided[0]
    assert decided[-1].startswith(f"not rolling back: already rolled back to revision {good}")


def test_the_plan_names_the_revision_it_rolls_back_to_and_the_write_says_so(world) -> None:
    world.inject("bad-deploy", ago_min=2)
    bad = world.revision()
    world.k8s.clear_requests()

    result = service_down(**FAST)

    assert result.outcome == RunbookOutcome.ROLLED_BACK, result.summary
    claim = next(a for a in result.actions if a.action == "rollback")
    assert claim.detail is not None
    assert claim.detail.startswith(
        f"kubectl rollout undo deployment/emotionscare --to-revision={bad - 1}: revision {bad} → {bad - 1} "
        f"({GOOD_IMAGE}, pod-template-hash "
    )
    (patch,) = _rollback_patches(world)
    assert patch.body[0] == {
        "op": "test",
        "path": "/metadata/annotations/deployment.kubernetes.io~1revision",
        "value": str(bad),
    }
    image = patch.body[1]["value"]["spec"]["containers"][0]["image"]
    assert image == GOOD_IMAGE  # the named revision's template, as the plan says


def test_a_release_that_ran_an_hour_ago_deployed_again_now_is_rolled_back(world) -> None:
    world.inject("bad-deploy", ago_min=60)  # v1.2.0-broken: revision 3, its ReplicaSet made an hour ago
    world.rollout(GOOD_IMAGE, ago=timedelta(minutes=50), cause="rollback to v1.1.0")  # revision 4
    world.rollout(BROKEN_IMAGE, cause="deploy v1.2.0-broken again")  # revision 5: the old ReplicaSet again
    bad = world.revision()
    wait_for(lambda: _api_health(world) == 500, timeout_s=30)
    world.k8s.clear_requests()

    result = service_down(**FAST)

    assert result.outcome == RunbookOutcome.ROLLED_BACK, result.summary
    correlation = next(e.message for e in result.timeline if e.message.startswith("deployment correlation"))
    assert f"live revision {bad} ({BROKEN_IMAGE}) deployed under a minute ago" in correlation
    assert f"known good: revision {bad - 1}" in correlation
    assert result.summary == f"rolled back to revision {bad - 1}; health verified"
    assert world.live_image() == GOOD_IMAGE and _api_health(world) == 200
    assert world.revision() == bad + 1 and len(_rollback_patches(world)) == 1


def test_a_rollback_landing_between_the_look_and_the_write_is_not_undone(world, monkeypatch) -> None:
    import flows.rollback

    world.inject("bad-deploy", ago_min=2)
    bad = world.revision()

    def a_person_rolls_back_right_after_the_look(rec, target, deploy):
        world.rollout(GOOD_IMAGE, cause="rollback by a person")  # lands after our look, before our write
        return None

    monkeypatch.setattr(flows.rollback, "look_again", a_person_rolls_back_right_after_the_look)
    world.k8s.clear_requests()

    result = service_down(**FAST)

    assert world.live_image() == GOOD_IMAGE and world.revision() == bad + 1  # the person's, no more
    assert not _rollback_patches(world)
    assert result.outcome == RunbookOutcome.RECOVERED, result.summary
    assert f"is at revision {bad + 1}, not {bad}: not rolled back; nothing written" in result.summary
