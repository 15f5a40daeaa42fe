"""`kill -9` of the process running `respond`, at each phase of a P1 (a bad deploy): the incident is
still resolved, with one rollback, the all-clear in the same thread, the takeover said there, and the
team lead escalated to once although nobody acknowledges.

Three phases kill the run's own process (the runner lives and reports the run Crashed); the last kills
the whole runner (nobody reports it: Prefect's zombie automation sets it Crashed, 45 s window), which
is then started again, as Kubernetes restarts a pod. Time from the kill to the takeover is printed and
kept in `TIMES` (shown at the end of the module).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from intake.dispatch import respond_parameters
from intake.sweep import Sweeper
from runbook.models import ActionStatus, Incident, IncidentStatus
from sandbox.testing import wait_for
from sandbox.world import GOOD_IMAGE, World
from tasks import runtime

from .conftest import Runner, open_p1

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TIMES: dict[str, float] = {}


def _actions(incident_id: str, action: str) -> list[Any]:
    return [a for a in runtime.store().list_actions(incident_id) if a.action == action]


def _timeline(incident_id: str, kind: str, actor: str | None = None) -> list[Any]:
    return [
        e
        for e in runtime.store().timeline(incident_id)
        if e.kind == kind and (actor is None or e.actor == actor)
    ]


def _acknowledged(i: str) -> bool:
    """Minute 0-1 done: acknowledged in #alerts-critical and the thread opened (its ts stored)."""
    if runtime.store().get_incident(i, with_timeline=False).slack_thread_ts is None:
        return False
    return any(a.target.endswith(":ack") and a.status == ActionStatus.SUCCEEDED for a in _actions(i, "slack"))


def _assessing(i: str) -> bool:
    return any(
        a.target.endswith(":trigger") and a.status == ActionStatus.SUCCEEDED for a in _actions(i, "pagerduty")
    )


def _rollback_in_flight(i: str) -> bool:
    return any(e.message.startswith("settling") for e in _timeline(i, "verify", "runbook:service-down"))


def _verifying(i: str) -> bool:
    return bool(_timeline(i, "verify", "runbook:respond"))


PHASES: dict[str, tuple[Callable[[str], bool], str]] = {
    "acknowledged": (_acknowledged, "run"),
    "assessing": (_assessing, "run"),
    "rollback-in-flight": (_rollback_in_flight, "run"),
    "verifying": (_verifying, "runner"),
}


def _open_p1(phase: str) -> Incident:
    return open_p1(f"durable:{phase}", "service-down")


def _dispatch(deployment_id: Any, incident: Incident) -> str:
    """What intake's dispatcher does: one run of the deployment, its id stored on the incident."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(
            deployment_id, parameters=respond_parameters(incident), idempotency_key=f"test:{incident.id}"
        )
    runtime.store().update_incident(incident.id, flow_run_id=str(run.id))
    return str(run.id)


def _state(run_id: str) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state  # type: ignore[arg-type]
    return state.name if state else "?"


@pytest.mark.parametrize("phase", list(PHASES))
def test_kill_at_each_phase_is_taken_over_and_resolved_once(
    phase: str, world: World, runner: Runner, sweeper: Sweeper, deployment_id: Any
) -> None:
    reached, how = PHASES[phase]
    world.inject("bad-deploy")
    incident = _open_p1(phase)
    first = _dispatch(deployment_id, incident)

    try:
        wait_for(lambda: reached(incident.id), timeout_s=240, interval_s=0.05)
    except AssertionError:
        raise AssertionError(f"phase {phase} not reached; runner log:\n{runner.log()}") from None
    had_thread = runtime.store().get_incident(incident.id, with_timeline=False).slack_thread_ts is not None
    killed_at = time.monotonic()
    runner.kill_run() if how == "run" else runner.kill_all()
    dispatched_s: list[float] = []

    def taken_over() -> bool:
        if how == "runner":
            runner.ensure()  # Kubernetes restarts the pod
        if not dispatched_s and _timeline(incident.id, "takeover", "intake:sweep"):
            dispatched_s.append(time.monotonic() - killed_at)
        return bool(_timeline(incident.id, "takeover", "runbook:respond"))

    wait_for(taken_over, timeout_s=240, interval_s=0.2)
    took_s = time.monotonic() - killed_at
    TIMES[phase] = took_s
    print(
        f"\n{phase}: kill -9 ({how}) → new respond run started by the sweeper after "
        f"{dispatched_s[0] if dispatched_s else float('nan'):.1f} s, generation 2 took over after {took_s:.1f} s"
    )
    assert took_s <= 90, f"takeover {took_s:.1f} s after the kill"

    def resolved() -> bool:
        return (
            runtime.store().get_incident(incident.id, with_timeline=False).status == IncidentStatus.RESOLVED
        )

    wait_for(resolved, timeout_s=240, interval_s=0.2)
    # the status turns RESOLVED just before the all-clear is posted (flows/response/all_clear.py): wait for it
    wait_for(
        lambda: any(
            m["text"].startswith("✅ [RESOLVED]")
            for m in world.slack.thread(
                "incidents",
                str(runtime.store().get_incident(incident.id, with_timeline=False).slack_thread_ts),
            )
        ),
        timeout_s=60,
        interval_s=0.2,
    )

    assert _state(first) in ("Crashed", "Failed"), _state(first)
    stored = runtime.store().get_incident(incident.id)
    assert stored.flow_run_id != first
    # one rollback, and the service back on the good image
    rollbacks = _actions(incident.id, "rollback")
    assert len(rollbacks) == 1 and rollbacks[0].status == ActionStatus.SUCCEEDED, rollbacks
    assert world.live_image() == GOOD_IMAGE
    # one acknowledgement, one thread, one page: nothing said twice
    assert len([a for a in _actions(incident.id, "slack") if a.target.endswith(":ack")]) == 1
    thread = world.slack.thread("incidents", str(stored.slack_thread_ts))
    texts = [m["text"] for m in thread]
    # the takeover said in the thread (top-level in #incidents if the run died before opening it)
    said = texts if had_thread else [m["text"] for m in world.slack.messages("incidents")]
    assert len([t for t in said if t.startswith("🔁 Taking over")]) == 1, said
    assert len([t for t in texts if t.startswith("✅ [RESOLVED]")]) == 1, texts
    # nothing said twice (status updates repeat the board on their clock: the same text may recur)
    once = [t for t in texts if "Last Updated:" not in t]
    assert not [t for t in set(once) if once.count(t) > 1], "a message posted twice"
    # nobody acknowledged: the team lead was escalated to, exactly once, whoever fired it
    lead = [t for t in texts if "escalated to you (team lead)" in t]
    assert len(lead) == 1, texts
    if phase == "verifying":  # the fix was made and recorded: verification goes on, no second runbook run
        goes_on = [e.message for e in _timeline(incident.id, "takeover", "runbook:respond")]
        assert any("service-down already ended rolled_back" in m for m in goes_on), goes_on
    fired = {d.key: d.fired_by for d in runtime.store().deadlines(incident.id)}
    print(f"{phase}: team lead escalation fired by {fired.get('P1:team-lead@300s')}")
    assert fired.get("P1:team-lead@300s")
