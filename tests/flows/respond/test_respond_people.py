"""`respond` and the people around it: escalation when nobody acknowledges, none when someone does, the
hand-over form in the Prefect UI, P3/P4 (backlog, never a page), and Slack/PagerDuty failing."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from prefect.flow_runs import resume_flow_run

from flows.respond import respond
from runbook.models import IncidentStatus, RunbookOutcome, utc_now
from runbook.severity import Severity
from sandbox.testing import wait_for
from sandbox.world import GOOD_IMAGE
from tasks import runtime
from tasks.backlog import StoreBacklog

from .support import flow_run_state
from .world import FAST_RUNBOOK, open_incident, posts, ref, text_of

QUICK: dict[str, Any] = dict(
    status_update_interval_s=0.5, escalation_poll_s=0.05, runbook_options=FAST_RUNBOOK
)


def events(world) -> list[str]:
    return [r.json()["event_action"] for r in world.pagerduty.requests]


def test_unacknowledged_p1_past_its_deadline_escalates_to_the_team_lead_and_pages(world) -> None:
    world.inject("bad-deploy")
    # started 31 s ago; the P1 response time scaled to 30 s: nobody acknowledged in time (and DevOps,
    # two response times, is still 29 s away)
    incident = open_incident(Severity.P1, starts_at=utc_now() - timedelta(seconds=31))

    result = respond(incident=ref(incident), ack_deadline_scale=0.1, stability_window_s=0.5, **QUICK)

    assert result.outcome == RunbookOutcome.ROLLED_BACK
    texts = [text_of(r) for r in posts(world)]
    assert any(
        t.startswith("🚨 @team-lead: escalated to you (team lead): not acknowledged within 30 s")
        for t in texts
    )
    assert events(world) == ["trigger", "trigger", "resolve"]  # the page, the escalation page, the resolve
    escalation = world.pagerduty.requests[1].json()
    assert "team-lead" in escalation["payload"]["summary"]
    assert escalation["dedup_key"] == world.pagerduty.requests[0].json()["dedup_key"]


def test_acknowledged_in_time_by_a_reaction_does_not_escalate(world) -> None:
    world.inject("bad-deploy")
    incident = open_incident(Severity.P1)  # started now; the P1 response time scaled to 3 s
    done: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: done.update(
            result=respond(incident=ref(incident), ack_deadline_scale=0.01, stability_window_s=4.0, **QUICK)
        )
    )
    runner.start()
    try:
        assert wait_for(lambda: world.slack.messages("alerts-critical"), 10)
        ack = world.slack.messages("alerts-critical")[0]
        world.slack.add_reaction_as_user("alerts-critical", ack["ts"], "eyes", "U0ALICE")
    finally:
        runner.join(timeout=60)

    assert done["result"].outcome == RunbookOutcome.ROLLED_BACK
    timeline = runtime.store().get_incident(incident.id).timeline
    assert any(e.kind == "acknowledged" and "U0ALICE" in e.message for e in timeline)
    assert any(e.kind == "deadline" and "no escalation to team-lead" in e.message for e in timeline)
    assert not any("@team-lead" in text_of(r) for r in posts(world))
    assert events(world) == ["trigger", "acknowledge", "resolve"]
    assert not [a for a in runtime.store().list_actions(incident.id) if a.target.startswith("P1:team-lead")]


def test_automation_hands_over_and_a_person_acknowledges_and_resolves_in_the_ui(world) -> None:
    world.inject("bad-deploy", ago_min=120)  # an old release: service-down does not roll back
    incident = open_incident(Severity.P1)
    done: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: done.update(
            result=respond(
                incident=ref(incident),
                stability_window_s=0.3,
                handover_timeout_s=60,
                handover_poll_s=1,
                **QUICK,
            )
        )
    )
    runner.start()
    try:
        owner = f"{incident.id}:respond:lifecycle-1"
        assert wait_for(lambda: runtime.store().get_action(owner), 20)
        run_id = str(runtime.store().get_action(owner).run_id)  # type: ignore[union-attr]
        assert wait_for(lambda: flow_run_state(run_id) == "PAUSED", 30)
        # automation could not fix it: the lead was told at once, and paged (P1)
        assert any("@team-lead: escalated to you" in text_of(r) for r in posts(world))
        assert events(world) == ["trigger", "trigger"]

        resume_flow_run(UUID(run_id), run_input={"acknowledged_by": "alice"})
        assert wait_for(
            lambda: runtime.store().get_incident(incident.id).status == IncidentStatus.ACKNOWLEDGED, 20
        )
        assert wait_for(lambda: flow_run_state(run_id) == "PAUSED", 30)
        world.clear()  # alice fixes it by hand
        resume_flow_run(
            UUID(run_id),
            run_input={"acknowledged_by": "alice", "resolved": True, "root_cause": "Bad release v1.2.0",
                       "resolution": "Rolled back by hand"},
        )  # fmt: skip
    finally:
        runner.join(timeout=90)

    assert done["result"].outcome == RunbookOutcome.RECOVERED
    assert world.live_image() == GOOD_IMAGE
    assert runtime.store().get_incident(incident.id).status == IncidentStatus.RESOLVED
    clear = next(text_of(r) for r in posts(world) if text_of(r).startswith("✅ [RESOLVED]"))
    assert "Root Cause: Bad release v1.2.0" in clear and "- Rolled back by hand" in clear
    assert events(world) == ["trigger", "trigger", "acknowledge", "resolve"]


@pytest.mark.parametrize("severity", [Severity.P3, Severity.P4])
def test_p3_and_p4_create_the_backlog_entry_and_never_page(world, severity: Severity) -> None:
    incident = open_incident(
        severity, name="SlowPage", title="Settings page slow", annotations={"workaround": "use the app"}
    )

    result = respond(incident=ref(incident), **QUICK)

    assert result.outcome == RunbookOutcome.MITIGATED
    items = StoreBacklog(runtime.store()).items(incident.id)
    assert world.pagerduty.requests == []
    if severity == Severity.P3:
        [item] = items
        assert item.kind == "fix" and item.due is not None and item.due.hour == 2  # the non-critical window
        assert "use the app" in item.description
        [note] = world.slack.messages("incidents")  # the team is notified; no thread, no escalation
        assert (
            note["text"].startswith("🟡 [P3 - MEDIUM] Settings page slow")
            and "Workaround: use the app" in note["text"]
        )
        assert world.slack.messages("alerts-critical") == []
    else:
        [item] = items
        assert item.kind == "backlog" and item.due is None
        assert world.slack.requests == []  # P4: nobody is notified
    # the same incident answered again adds nothing twice
    respond(incident=ref(incident), **QUICK)
    assert len(StoreBacklog(runtime.store()).items(incident.id)) == 1


@pytest.mark.parametrize(
    ("slack_fault", "pd_fault"),
    [
        ({"kind": "http_500"}, {"kind": "http_500"}),
        ({"kind": "ok_false", "error": "fatal_error"}, {"kind": "rate_limited"}),
        ({"kind": "timeout", "delay_s": 30}, {"kind": "timeout", "delay_s": 30}),
    ],
    ids=["5xx", "ok_false-429", "timeouts"],
)
def test_slack_and_pagerduty_failing_never_stop_the_remediation(
    world,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    slack_fault: dict,
    pd_fault: dict,
) -> None:
    monkeypatch.setenv("RUNBOOK_SLACK_TIMEOUT_S", "0.3")
    monkeypatch.setenv("RUNBOOK_PAGERDUTY_TIMEOUT_S", "0.3")
    runtime.reset()
    world.inject("bad-deploy")
    incident = open_incident(Severity.P1)
    world.slack.fail_next(500, **slack_fault)  # Slack is down for the whole incident
    world.pagerduty.fail_next(500, **pd_fault)

    result = respond(
        incident=ref(incident), stability_window_s=0.3, **{**QUICK, "status_update_interval_s": 2.0}
    )

    assert result.outcome == RunbookOutcome.ROLLED_BACK, result.summary
    assert world.live_image() == GOOD_IMAGE
    stored = runtime.store().get_incident(incident.id)
    assert stored.status == IncidentStatus.RESOLVED and stored.slack_thread_ts is None
    undelivered = [e.message for e in stored.timeline if e.kind == "undelivered"]
    for what in (
        "'ack'",
        "'thread'",
        "'assessment'",
        "'triage'",
        "'all-clear'",
        "PagerDuty trigger",
        "PagerDuty resolve",
    ):
        assert any(what in m for m in undelivered), (what, undelivered)
    assert all("after 3 attempts" in m for m in undelivered)
    assert world.slack.messages("incidents") == [] and world.pagerduty.alerts() == []
    for secret in (
        world.settings_env()["RUNBOOK_SLACK_TOKEN"],
        world.settings_env()["RUNBOOK_PAGERDUTY_ROUTING_KEY"],
    ):
        assert secret not in caplog.text
        assert all(secret not in e.message for e in stored.timeline)
