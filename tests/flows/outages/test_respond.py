"""`respond` with a dependency failing mid-response: Completed, never Failed, the hand-over where it can."""

from __future__ import annotations

import threading

import pytest
from respond.world import FAST_RUNBOOK, open_incident, ref

from flows.respond import respond
from runbook.models import RunbookOutcome
from runbook.severity import Severity
from sandbox.testing import wait_for
from tasks import runtime

OPTIONS = dict(
    status_update_interval_s=0.3,
    escalation_poll_s=0.3,
    stability_window_s=0.5,
    handover_timeout_s=1,
    handover_poll_s=1,
    runbook_options=FAST_RUNBOOK,
)


def test_kubernetes_api_down_the_runbook_escalates_and_respond_hands_over(world) -> None:
    world.inject("bad-deploy")
    world.inject("k8s-api-down", mode="5xx")
    incident = open_incident(Severity.P1, title="Homepage returns 500")

    state = respond(incident=ref(incident), **OPTIONS, return_state=True)

    assert state.is_completed(), state
    result = state.result()
    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert "handed over" in result.summary
    assert world.slack.messages("incidents"), "the thread was opened"
    assert "trigger" in [r.json()["event_action"] for r in world.pagerduty.requests]


def test_incident_store_down_mid_response_escalates_in_slack_and_pagerduty(pg_store_world) -> None:
    world = pg_store_world
    world.inject("bad-deploy")
    incident = open_incident(Severity.P1, title="Homepage returns 500")

    def take_the_store_away() -> None:  # once the thread is open: the response is under way
        wait_for(lambda: world.slack.messages("incidents"), timeout_s=30)
        world.inject("store-down")

    killer = threading.Thread(target=take_the_store_away)
    killer.start()
    state = respond(incident=ref(incident), **OPTIONS, return_state=True)
    killer.join()

    assert state.is_completed(), state
    result = state.result()
    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert "the incident store" in result.summary
    texts = [m["text"] for m in world.slack.all_messages("incidents")]
    assert any("respond stopped" in t and "incident store" in t for t in texts)
    assert "trigger" in [r.json()["event_action"] for r in world.pagerduty.requests]


@pytest.mark.parametrize(
    ("fault", "mode", "undelivered"),
    [("slack-down", "refuse", "Slack"), ("pagerduty-down", "5xx", "PagerDuty")],
)
def test_slack_or_pagerduty_down_the_response_goes_on_through_the_other(
    world, fault: str, mode: str, undelivered: str
) -> None:
    world.inject("bad-deploy")
    world.inject(fault, mode=mode)
    incident = open_incident(Severity.P1, title="Homepage returns 500")

    state = respond(incident=ref(incident), **OPTIONS, return_state=True)

    assert state.is_completed(), state
    assert state.result().outcome in (RunbookOutcome.ROLLED_BACK, RunbookOutcome.RECOVERED)
    stored = runtime.store().timeline(incident.id)
    assert any(e.kind == "undelivered" and undelivered in e.message for e in stored)
    if fault == "slack-down":  # the page went out
        assert next(r.json()["event_action"] for r in world.pagerduty.requests) == "trigger"
    else:  # the thread was opened
        assert world.slack.messages("incidents")
