"""`respond` for an incident on payments (not the settings' own service): payments' channels, payments'
PagerDuty key, payments' Deployment rolled back; emotionscare's channels and Deployment untouched."""

from __future__ import annotations

from flows.respond import respond
from runbook.models import IncidentRef, RunbookOutcome
from runbook.severity import Severity
from sandbox.world.specs import DEFAULT_ROUTING_KEY
from tasks import runtime

from .support import World

FAST_RUNBOOK = {"settle_s": 0.0, "poll_interval_s": 0.05, "ready_deadline_s": 20.0, "verify_deadline_s": 5.0}


def test_respond_works_on_its_incidents_service_with_its_people(many_world: World) -> None:
    world = many_world
    payments, emotionscare = world.unit("payments"), world.unit("emotionscare")
    world.inject("bad-deploy", service="payments", ago_min=2)
    before = emotionscare.revision()

    result = respond(
        incident=IncidentRef(service="payments", severity=Severity.P1, summary="payments checkout 500"),
        status_update_interval_s=5.0,
        escalation_poll_s=0.05,
        stability_window_s=0.3,
        runbook_options=FAST_RUNBOOK,
    )

    assert result.outcome == RunbookOutcome.ROLLED_BACK, result.summary
    assert payments.live_image().endswith("v1.1.0") and emotionscare.revision() == before
    assert runtime.store().get_incident(result.incident_id).service == "payments"
    assert world.slack.messages("payments-alerts") and world.slack.messages("payments-incidents")
    assert world.slack.messages("alerts-critical") == [] and world.slack.messages("incidents") == []
    keys = {r.json()["routing_key"] for r in world.pagerduty.requests}
    assert keys == {payments.spec.routing_key} and DEFAULT_ROUTING_KEY not in keys
