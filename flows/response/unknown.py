"""An incident for a service the catalogue does not know: acknowledge, page the default contact, escalate
with the reason, run no runbook.

Usage (inside `respond`, after `Record.open` bound the incident's service)::

    if is_unknown(rec.incident):
        return unknown_service(rec, rec.incident)

Why nothing else: every runbook acts on the incident's service through its catalogue entry (its cluster,
Deployment, URLs, database). An alert naming a service that has none must not be acted on as some other
service (today's emotionscare, or the catalogue's first), so nothing is probed and nothing is written: the
runbook's settings view refuses every target (tasks/runtime.py, `UnknownService`). People are told: the
acknowledgement in the default alerts channel, a page on the default PagerDuty routing key (the settings'
`RUNBOOK_PAGERDUTY_ROUTING_KEY`), and the escalation to the on-call and the team lead, with the reason,
in the incident's timeline. The flow run ends Completed with the outcome `escalated`; the incident stays
open for the people who take it.
"""

from __future__ import annotations

from flows.comms import Comms
from flows.record import Record
from runbook.models import Incident, RunbookOutcome, RunbookResult
from tasks import runtime

__all__ = ["is_unknown", "unknown_service"]


def is_unknown(incident: Incident) -> bool:
    """True when the catalogue has no service named (or aliased) `incident.service`."""
    return runtime.catalogue().find(incident.service) is None


def unknown_service(rec: Record, incident: Incident) -> RunbookResult:
    """Acknowledge, page the default contact, escalate with the reason; no runbook, no probe, no write."""
    known = ", ".join(runtime.catalogue().names)
    reason = (
        f"service {incident.service!r} is not in the service catalogue (known: {known}): "
        "no runbook runs, nothing is probed or changed; a person must take it"
    )
    rec.note("unknown-service", reason, evidence={"service": incident.service, "known": known})
    comms = Comms(rec)
    slack = runtime.settings().slack  # the process settings' channels and contacts: the default ones
    comms.acknowledge_alert(
        f"👀 Acknowledged: [{incident.severity}] {incident.title} — {reason}. "
        f"{slack.oncall_handle} {slack.lead_handle}: please take it."
    )
    comms.page(
        "trigger",
        "trigger",
        summary=f"[{incident.severity}] uncatalogued service {incident.service}: {incident.title}",
        details={"incident": incident.id, "service": incident.service, "reason": reason},
    )
    rec.act(
        "escalate",
        "unknown-service",
        lambda: comms.send(
            "escalate-unknown-service",
            slack.alerts_channel,
            f"🚨 {slack.oncall_handle} {slack.lead_handle}: escalated: {reason}. Incident {incident.id}",
        ),
        f"{slack.oncall_handle}, {slack.lead_handle} ({reason})",
    )
    rec.note("escalate", f"escalated to {slack.oncall_handle} and {slack.lead_handle}: {reason}")
    return rec.finish(RunbookOutcome.ESCALATED, f"escalated to people: {reason}")
