"""Escalation timers, acknowledgement, status updates and undelivered messages (flows/escalation.py),
against the Slack and PagerDuty stand-ins and a real store, inside Prefect flow runs.

Deadlines are made deterministic by starting the incident in the past (the alert's `starts_at`) and
shrinking the guide's response times with `deadline_scale`: no test waits for a deadline to pass.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from prefect import flow

from flows.background import background
from flows.comms import Comms
from flows.escalation import EscalationWatch
from flows.record import Record
from flows.status_updates import Board, StatusUpdates
from runbook.messages import parse_message
from runbook.models import Alert, AlertSource, IncidentRef, IncidentStatus, utc_now
from runbook.severity import Severity
from sandbox.pagerduty import PagerDutyStandIn
from sandbox.slack import SlackStandIn
from sandbox.testing import wait_for
from tasks import runtime

pytestmark = pytest.mark.usefixtures("comms_env", "prefect_api")

SCALE = 1 / 45  # P1: 5 min → 6.7 s; P2: 15 min → 20 s; DevOps (two P1 deadlines) at 13.3 s


def incident_started(seconds_ago: float, severity: Severity, security: bool = False) -> str:
    store = runtime.store()
    alert = store.add_alert(
        Alert(
            source=AlertSource.ALERTMANAGER,
            fingerprint=f"esc-{seconds_ago}-{severity}-{security}",
            name="HighErrorRate",
            annotations={"summary": "High Error Rate (6%)"},
            starts_at=utc_now() - timedelta(seconds=seconds_ago),
        )
    )
    incident, _ = store.open_incident_for(alert, severity, "test.rule", None, security=security)
    return incident.id


@flow(name="test-open-thread")
def open_thread(incident_id: str) -> str:
    comms = Comms(Record.open("respond", IncidentRef(incident_id=incident_id)))
    comms.acknowledge_alert("👀 Acknowledged")
    thread = comms.open_thread("🔴 [P1 - CRITICAL] High Error Rate (6%)")
    assert thread is not None
    return thread[1]


@flow(name="test-escalation-tick")
def tick(incident_id: str, scale: float = SCALE) -> str | None:
    comms = Comms(Record.open("respond", IncidentRef(incident_id=incident_id)))
    watch = EscalationWatch(comms.detached(), deadline_scale=scale, poll_s=0.05)
    watch.tick()
    return watch.acknowledged_by


def escalations(incident_id: str) -> list[str]:
    return sorted(a.target for a in runtime.store().list_actions(incident_id) if a.action == "escalate")


def test_unacknowledged_p1_past_its_deadline_escalates_to_the_lead_and_pages(
    slack: SlackStandIn, pagerduty: PagerDutyStandIn
) -> None:
    # The lead is due at 20 s, DevOps at 40 s (scale 1/15): 19 s for the thread and the tick, which a
    # loaded machine needed more than the 5 s that SCALE leaves (DevOps came due too).
    incident_id = incident_started(21, Severity.P1)
    ts = open_thread(incident_id)

    tick(incident_id, scale=1 / 15)

    assert escalations(incident_id) == ["P1:on-call@0s", "P1:team-lead@300s"]
    replies = [m["text"] for m in slack.thread("incidents", ts)[1:]]
    assert any(
        t.startswith("🚨 @team-lead: escalated to you (team lead): not acknowledged within") for t in replies
    )
    events = [r.json() for r in pagerduty.requests]
    assert [e["event_action"] for e in events] == ["trigger", "trigger"]
    assert {e["dedup_key"] for e in events} == {incident_id}  # one PagerDuty alert for the incident
    assert "team-lead" in events[1]["payload"]["summary"]
    assert pagerduty.alert(incident_id).trigger_count == 2  # type: ignore[union-attr]


def test_acknowledged_by_a_reaction_in_time_does_not_escalate(
    slack: SlackStandIn, pagerduty: PagerDutyStandIn
) -> None:
    incident_id = incident_started(8, Severity.P1)
    ts = open_thread(incident_id)
    slack.add_reaction_as_user("incidents", ts, "eyes", "U0ALICE")

    assert tick(incident_id) == "U0ALICE"

    assert escalations(incident_id) == ["P1:on-call@0s"]  # the page at once, no team lead
    incident = runtime.store().get_incident(incident_id)
    assert incident.status == IncidentStatus.ACKNOWLEDGED and incident.acknowledged_at is not None
    assert any(e.kind == "deadline" and "no escalation to team-lead" in e.message for e in incident.timeline)
    assert not any("@team-lead" in m["text"] for m in slack.all_messages("incidents"))
    # the page that went out at once is acknowledged on the same dedup_key
    assert [r.json()["event_action"] for r in pagerduty.requests] == ["trigger", "acknowledge"]
    assert pagerduty.alert(incident_id).status == "acknowledged"  # type: ignore[union-attr]


def test_our_own_reactions_are_not_an_acknowledgement(slack: SlackStandIn) -> None:
    incident_id = incident_started(8, Severity.P1)
    ts = open_thread(incident_id)
    slack.add_reaction_as_user("incidents", ts, "robot_face", "U0RUNBOOK1")  # the stand-in's bot user

    assert tick(incident_id) is None
    assert "P1:team-lead@300s" in escalations(incident_id)


def test_reclassifying_p2_to_p1_redrives_the_deadlines(
    slack: SlackStandIn, pagerduty: PagerDutyStandIn
) -> None:
    # scale 1/15: P2's deadline (60 s) not reached; P1's lead (20 s) passed, P1's DevOps (40 s) 19 s away
    incident_id = incident_started(21, Severity.P2)

    tick(incident_id, scale=1 / 15)
    assert escalations(incident_id) == ["P2:on-call@0s"]
    assert pagerduty.requests == []  # P2 never pages

    runtime.store().update_incident(incident_id, severity=Severity.P1, severity_rule="p1.service_unavailable")
    tick(incident_id, scale=1 / 15)

    assert escalations(incident_id) == ["P1:on-call@0s", "P1:team-lead@300s", "P2:on-call@0s"]
    assert [r.json()["event_action"] for r in pagerduty.requests] == ["trigger", "trigger"]
    assert any("@team-lead" in m["text"] for m in slack.all_messages("incidents"))


def test_two_deadlines_without_acknowledgement_reach_devops(
    slack: SlackStandIn, pagerduty: PagerDutyStandIn
) -> None:
    incident_id = incident_started(14, Severity.P1)
    open_thread(incident_id)

    tick(incident_id)

    assert escalations(incident_id) == ["P1:devops@600s", "P1:on-call@0s", "P1:team-lead@300s"]
    devops = slack.messages("devops")
    assert len(devops) == 1 and devops[0]["text"].startswith("🚨 Escalated to DevOps")
    assert len(pagerduty.requests) == 3 and pagerduty.alert(incident_id).trigger_count == 3  # type: ignore[union-attr]


def test_a_security_incident_goes_to_the_security_contact_at_once(slack: SlackStandIn) -> None:
    incident_id = incident_started(0, Severity.P2, security=True)
    ts = open_thread(incident_id)

    tick(incident_id)

    assert escalations(incident_id) == ["P2:on-call@0s", "P2:security@0s"]
    texts = [m["text"] for m in slack.thread("incidents", ts)]
    assert any(
        t.startswith("🔐 @security: security incident") and "security@emotionscare.com" in t for t in texts
    )


def test_a_resolved_incident_is_never_escalated(pagerduty: PagerDutyStandIn) -> None:
    incident_id = incident_started(14, Severity.P1)
    runtime.store().set_status(incident_id, IncidentStatus.RESOLVED, utc_now(), "test")
    tick(incident_id)
    assert escalations(incident_id) == [] and pagerduty.requests == []


@flow(name="test-status-updates")
def updates_for(incident_id: str, interval_s: float, run_s: float) -> list[int]:
    rec = Record.open("respond", IncidentRef(incident_id=incident_id))
    comms = Comms(rec)
    comms.open_thread("🔴 [P1 - CRITICAL] High Error Rate (6%)")
    board = Board(title="High Error Rate (6%)", impact="All users affected")
    board.done("Identified error pattern")
    board.doing("Checking slow queries")
    updates = StatusUpdates(comms.detached(), board, interval_s)
    with background(updates):
        wait_for(lambda: len(updates.posted) >= run_s / interval_s - 1, run_s * 3)
    return updates.posted


def test_status_updates_go_into_the_thread_at_the_interval_and_stop(slack: SlackStandIn) -> None:
    # "Duration" counts whole minutes between the displayed (truncated) times: an incident started 60 s
    # ago reads "1 minute" unless the update crosses a minute boundary the start had not, so start it
    # with 10 s of the minute to spare (CI10: started at :59.x, updated at :00.x → "2 minutes").
    wait_for(lambda: utc_now().second < 50, 15, 0.05)
    incident_id = incident_started(60, Severity.P1)
    posted = updates_for(incident_id, 0.2, 1.0)
    thread_ts = runtime.store().get_incident(incident_id).slack_thread_ts
    assert thread_ts is not None
    count = len(slack.thread("incidents", thread_ts))
    assert posted == sorted(posted) and len(posted) >= 4 and len(set(posted)) == len(posted)
    update = parse_message(slack.thread("incidents", thread_ts)[1]["text"])
    assert update.header == "🔴 [P1 - CRITICAL] High Error Rate (6%)"
    assert update.fields["Duration"] == "1 minute"
    assert update.sections["Actions Taken"] == ["✓ Identified error pattern", "→ Checking slow queries"]
    # stopped: nothing more arrives
    with pytest.raises(AssertionError, match="condition not met"):
        wait_for(lambda: len(slack.thread("incidents", thread_ts)) > count, 0.6)


@flow(name="test-undelivered")
def post_twice(incident_id: str) -> tuple[bool, bool]:
    comms = Comms(Record.open("respond", IncidentRef(incident_id=incident_id)))
    first = comms.post("first", "lost to Slack's outage")
    second = comms.post("second", "delivered")
    return first is not None, second is not None


def test_slack_failing_is_recorded_as_undelivered_and_the_next_message_goes_out(slack: SlackStandIn) -> None:
    incident_id = incident_started(0, Severity.P2)
    slack.fail_next(3, "ok_false", error="internal_error")
    assert post_twice(incident_id) == (False, True)
    undelivered = [e for e in runtime.store().timeline(incident_id) if e.kind == "undelivered"]
    assert len(undelivered) == 1 and "after 3 attempts" in undelivered[0].message
    assert [m["text"] for m in slack.messages("incidents")] == ["delivered"]


def test_a_step_another_holder_is_still_firing_is_left_unfired_for_it(
    slack: SlackStandIn, pagerduty: PagerDutyStandIn
) -> None:
    """The lead's step claimed by someone still at it (intake's sweeper: no run id, just claimed): the
    watch is refused and leaves the step unfired, so its holder (or, if that died, the next sweeper once
    the claim is stale) settles it; the on-call step it fired itself is marked fired."""
    incident_id = incident_started(21, Severity.P1)
    open_thread(incident_id)
    store = runtime.store()
    store.claim_action(incident_id, "escalate", "P1:team-lead@300s", detail="sent by intake's sweeper")

    tick(incident_id, scale=1 / 15)

    fired = {d.key: d.fired_by for d in store.deadlines(incident_id)}
    assert fired.get("P1:on-call@0s") is not None, fired
    assert fired.get("P1:team-lead@300s") is None, fired  # the holder's to mark
    assert not any("@team-lead" in m["text"] for m in slack.all_messages("incidents"))
