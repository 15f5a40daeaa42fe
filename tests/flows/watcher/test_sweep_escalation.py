"""Escalation outlives the runner: intake's sweeper fires a stored step that no `respond` fired, once,
with the same claims as the escalation watch; an acknowledgement settles the steps it cancels."""

from __future__ import annotations

from datetime import timedelta

from intake.sweep import ACTOR, Sweeper, SweepSettings
from runbook.models import Incident, IncidentStatus, utc_now
from runbook.store import Deadline
from sandbox.pagerduty import PagerDutyStandIn
from sandbox.slack import SlackStandIn
from tasks import runtime

from .conftest import open_p1


def _incident() -> Incident:
    return open_p1("sweep:esc")


def _lead(incident: Incident, due_s_ago: float) -> Deadline:
    return Deadline(
        incident_id=incident.id,
        key="P1:team-lead@300s",
        severity="P1",
        due_at=utc_now() - timedelta(seconds=due_s_ago),
        unacknowledged_only=True,
        notices=[
            {"kind": "post", "key": "escalate-P1-team-lead@300s", "text": "🚨 @team-lead: escalated to you"},
            {"kind": "page", "key": "escalate-P1-team-lead@300s", "summary": "[P1] escalated", "details": {}},
        ],
    )


def test_an_overdue_step_no_run_fired_is_fired_once_by_the_sweeper(
    stand_ins: tuple[SlackStandIn, PagerDutyStandIn],
) -> None:
    slack, pagerduty = stand_ins
    incident = _incident()
    store = runtime.store()
    store.plan_deadlines(incident.id, [_lead(incident, due_s_ago=1)])
    sweeper = Sweeper(store, None, SweepSettings(_env_file=None, grace_s=5))  # type: ignore[call-arg]

    assert sweeper.run_once().escalated == []  # within the grace: the watch's to fire
    assert store.plan_deadlines(incident.id, [_lead(incident, due_s_ago=60)]) == 0  # planned once
    late = Sweeper(store, None, SweepSettings(_env_file=None, grace_s=0))  # type: ignore[call-arg]

    assert late.run_once().escalated == [(incident.id, "P1:team-lead@300s")]
    assert late.run_once().escalated == []  # once
    assert [m["text"] for m in slack.messages("incidents")] == ["🚨 @team-lead: escalated to you"]
    assert len(pagerduty.alerts()) == 1
    (stored,) = store.deadlines(incident.id)
    assert stored.fired_by == ACTOR and stored.fired_at is not None
    claims = [a for a in store.list_actions(incident.id) if a.action == "escalate"]
    assert [a.target for a in claims] == ["P1:team-lead@300s"]  # the watch's claim: it will be refused


def test_an_acknowledged_incident_settles_the_steps_an_acknowledgement_cancels(
    stand_ins: tuple[SlackStandIn, PagerDutyStandIn],
) -> None:
    slack, _ = stand_ins
    incident = _incident()
    store = runtime.store()
    store.plan_deadlines(incident.id, [_lead(incident, due_s_ago=60)])
    store.set_status(incident.id, IncidentStatus.ACKNOWLEDGED, utc_now(), "person:U1", "acknowledged")

    assert Sweeper(store, None, SweepSettings(_env_file=None, grace_s=0)).run_once().escalated == []  # type: ignore[call-arg]
    assert slack.messages("incidents") == []
    (stored,) = store.deadlines(incident.id)
    assert stored.fired_by == "not needed: acknowledged"
