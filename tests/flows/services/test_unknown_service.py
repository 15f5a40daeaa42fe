"""An incident for a service the catalogue does not know: respond acknowledges, pages the default contact,
escalates with the reason, runs no runbook, and sends nothing to any catalogued service's cluster,
endpoints, database or external APIs (counted at each)."""

from __future__ import annotations

from typing import Any

from flows.respond import respond
from runbook.models import Alert, AlertSource, IncidentRef, RunbookOutcome, Signals
from runbook.severity import Severity
from sandbox.testing import wait_for
from tasks import runtime

from .support import World, all_requests, clear_requests


def _open_uncatalogued_incident() -> str:
    """The incident intake opens for an alert labelled service=ledger (not in the catalogue)."""
    store = runtime.store()
    alert = store.add_alert(
        Alert(
            source=AlertSource.ALERTMANAGER,
            fingerprint="test:ledger:down",
            name="LedgerDown",
            service="ledger",
            labels={"service": "ledger"},
            annotations={"summary": "ledger is down"},
            signals=Signals(service_reachable=False),
        )
    )
    incident, created = store.open_incident_for(alert, Severity.P1, "p1.service_unreachable", "service-down")
    assert created
    return incident.id


def test_an_uncatalogued_service_is_escalated_and_nothing_is_touched(many_world: World) -> None:
    world = many_world
    incident_id = _open_uncatalogued_incident()
    clear_requests(world)

    state: Any = respond(
        incident=IncidentRef(incident_id=incident_id), escalation_poll_s=0.1, return_state=True
    )

    assert state.is_completed(), state
    result = state.result()
    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert "'ledger' is not in the service catalogue" in result.summary
    # nothing reached any catalogued service: not a Kubernetes call, not a probe, not an API check
    touched = all_requests(world)
    assert touched == {name: [] for name in touched}, touched
    # people were told: the default alerts channel, the default PagerDuty key, the escalation with its reason
    timeline = runtime.store().timeline(incident_id)
    reasons = [e.message for e in timeline if e.kind in ("unknown-service", "escalate")]
    assert len(reasons) == 2 and all("not in the service catalogue" in m for m in reasons), reasons
    # no runbook ran: respond is the only runbook actor, and it started none
    assert {e.actor for e in timeline if e.actor.startswith("runbook:")} == {"runbook:respond"}
    assert not [e for e in timeline if e.kind in ("assess", "act", "decide")]
    alert = wait_for(lambda: world.pagerduty.alert(incident_id))
    assert alert.status == "triggered"
    posted = [m.get("text", "") for m in world.slack.messages("#alerts-critical")]
    assert any("ledger" in text and "Acknowledged" in text for text in posted), posted
    assert any("escalated" in text and "@team-lead" in text for text in posted), posted
