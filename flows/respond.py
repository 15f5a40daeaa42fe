"""The entry point of every incident: the guide's response by level, communications and escalation.

Usage::

    respond(incident_id=incident.id)                          # what intake starts ("respond/respond")
    respond(service="emotionscare", severity="P1", summary="homepage 500")   # by hand (the UI's form)
    respond(incident=ref, status_update_interval_s=0.2, ack_deadline_scale=0.002,
            runbook_options={"settle_s": 0, "poll_interval_s": 0.05})       # tests, drills

Started by hand, the form leads with what a person knows (service, a choice of the catalogue's services;
severity; summary) and takes an existing incident by id (`incident_id`); flows/form.py writes the choices.

Guide sections, in the order the flow follows them (each a module of flows/response/):
- One response per incident (`ownership`): the run claims `("respond", "lifecycle-N")` in the store. A
  second `respond` for an open incident joins it (no second thread, no second page) until it is
  resolved or `join_timeout_s` passes, and takes over only if the first run ended without resolving it.
- P1 - Critical Incident Response › Timeline: First 5 Minutes (`urgent`):
  *Minute 0-1 Acknowledge*: #alerts-critical, the thread in #incidents, PagerDuty, the exact start time.
  *Minute 1-2 Assessment* (`assess`): Sentry, the kind of failure (`runbook.policy.FAILURE_RULES`),
  CPU, memory, disk, network latency, recent deploys.
  *Minute 2-3 Triage* (`triage`): affected services, user impact, audience, the fix-time estimate
  (`runbook.policy.FIX_ESTIMATES`) and the decision matrix (`runbook.policy.triage`).
  *Minute 3-5 Action* (`act`, `verify`): the matching runbook flow as a subflow, then verify; healthy →
  mitigated, stable through `stability_window_s` → the all-clear (`all_clear`), PagerDuty resolved.
- P2 - High Severity Response (`urgent`): assess (P1 signals reclassify the incident to P1 and the P1
  timeline runs), decide (`runbook.policy.p2_diagnosis`: the diagnosis flow of "Common P2 Issues"), fix
  or escalate within the 15 minutes.
- P3 and P4 (`low_severity`): workaround, scheduled fix, the team told; P4 a backlog item, nobody told.
- Communication During Incident: status updates in the thread every `status_update_interval_s`
  (flows/status_updates.py), stopped before the all-clear.
- Escalation Contacts: escalation timers (flows/escalation.py) on the level's response time ×
  `ack_deadline_scale`, on the incident's *current* level: raised while the response runs (a worse alert
  joined, or P2 → P1 here), the new level's timeline applies and the thread says so.

When automation cannot restore the service (`handover`), the flow escalates to the team lead at once
(paging on P1) and pauses with a form in the Prefect UI (`HandOver`: acknowledge, resolve with root cause
and resolution) for up to `handover_timeout_s`, status updates and escalation timers going on meanwhile.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from flows.comms import Comms
from flows.outages import escalates_on_outage
from flows.parameters import IncidentId, ServiceName, Summary
from flows.record import Record
from flows.response.assess import Assessment, FailureKind, assess
from flows.response.handover import HandOver
from flows.response.low_severity import p3, p4
from flows.response.options import ResponseOptions
from flows.response.ownership import claim_lifecycle, follow, lifecycle
from flows.response.related import follow_primary, primary_for
from flows.response.triage import TriageResult, triage_incident
from flows.response.unknown import is_unknown, unknown_service
from flows.response.urgent import urgent
from runbook.messages import clock
from runbook.models import DEFAULT_SERVICE, IncidentRef, RunbookOutcome, RunbookResult, utc_now
from runbook.severity import Severity
from tasks import runtime
from tasks.backlog import next_window

__all__ = ["Assessment", "FailureKind", "HandOver", "TriageResult", "assess", "respond", "triage_incident"]

RUNBOOK = "respond"


@flow(
    name=RUNBOOK,
    description="Every incident: the guide's P1 timeline or P2/P3/P4 response, comms, escalation.",
)
@escalates_on_outage
def respond(
    service: ServiceName = DEFAULT_SERVICE,
    severity: Severity = Severity.P1,
    summary: Summary = "",
    incident_id: IncidentId = "",
    status_update_interval_s: Annotated[float | None, Field(gt=0, le=3600)] = None,
    ack_deadline_scale: Annotated[float, Field(gt=0, le=10)] = 1.0,
    escalation_poll_s: Annotated[float, Field(gt=0, le=300)] = 10.0,
    stability_window_s: Annotated[float, Field(ge=0, le=3600)] = 120.0,
    handover_timeout_s: Annotated[int, Field(ge=1, le=86400)] = 3600,
    handover_poll_s: Annotated[int, Field(ge=1, le=60)] = 5,
    runbook_options: dict[str, Any] | None = None,
    workaround: Annotated[str, Field(max_length=2000)] = "",
    fix_window_utc: str = "02:00",
    postmortem_time_utc: str = "10:00",
    join_timeout_s: Annotated[float, Field(ge=0, le=86400)] = 600.0,
    dry_run: bool = False,
    incident: IncidentRef | None = None,
) -> RunbookResult:
    """Respond to an incident the way the guide runs one, by its level (P1 timeline, P2, P3, P4).

    Args:
        service: the service in trouble (in the form: one of the catalogue's services)
        severity: the incident's level when one is opened: P1 critical · P2 high · P3 medium · P4 low
        summary: what is wrong, in a sentence (shown in Slack)
        incident_id: an existing incident's id; empty: open (or join) one for this service and runbook
        status_update_interval_s: seconds between status updates in the thread (empty: the settings' 5 min)
        ack_deadline_scale: multiplies the guide's response times (P1 5 min, P2 15 min); drills shrink it
        escalation_poll_s: how often acknowledgements are read and escalation deadlines checked
        stability_window_s: how long the service must stay healthy after the fix before the all-clear
        handover_timeout_s: how long to wait for a person when automation could not restore the service
        handover_poll_s: how often the paused run looks for the person's answer
        runbook_options: options passed to the runbook flow (e.g. {"settle_s": 30}); unknown ones noted
        workaround: P3: the workaround users have, documented in the incident
        fix_window_utc: P3: the non-critical window (HH:MM UTC) the fix is scheduled for
        postmortem_time_utc: the post-mortem slot (HH:MM UTC) within the next 24 hours
        join_timeout_s: a second run for an open incident follows it this long at most
        dry_run: record and log the plan, change and send nothing
        incident: Python callers: the whole incident instead of the fields above (not in the form)
    """
    rec = Record.open(
        RUNBOOK,
        IncidentRef.from_form(
            incident,
            service=service,
            severity=severity,
            summary=summary,
            incident_id=incident_id,
            default_summary="incident response started by hand",
        ),
        dry_run=dry_run,
    )
    next_window(utc_now(), fix_window_utc)  # bad windows fail here, before anything is sent
    next_window(utc_now(), postmortem_time_utc)
    current = runtime.store().get_incident(rec.incident.id, with_timeline=False)
    if not current.is_open:
        return rec.finish(
            RunbookOutcome.RECOVERED,
            f"incident already resolved at {clock(current.resolved_at or utc_now())}",
        )
    if is_unknown(current):  # not in the catalogue: tell people, act on nothing (flows/response/unknown.py)
        return unknown_service(rec, current)
    opts = ResponseOptions(
        interval_s=status_update_interval_s or runtime.settings().response.status_update_interval_min * 60.0,
        scale=ack_deadline_scale,
        poll_s=escalation_poll_s,
        stability_s=stability_window_s,
        handover_s=handover_timeout_s,
        handover_poll_s=handover_poll_s,
        options=dict(runbook_options or {}),
        workaround=workaround,
        fix_window=fix_window_utc,
        postmortem_at=postmortem_time_utc,
        dry_run=dry_run,
    )
    # One response per incident: claim it, or join the run that has it (take over if that run ended).
    key, owner = (None, None) if dry_run else claim_lifecycle(rec)
    deadline = time.monotonic() + join_timeout_s
    while owner is not None:
        rec.note(
            "join", f"respond run {owner} is handling this incident: joining it (no second thread or page)"
        )
        joined = follow(rec, owner, deadline, opts.poll_s)
        if joined is not None:
            return joined
        key, owner = claim_lifecycle(rec)
    # The response by level (read again: it may have been raised while we joined).
    with lifecycle(rec, key):
        latest = runtime.store().get_incident(rec.incident.id, with_timeline=False)
        primary = None if dry_run else primary_for(latest)
        if primary is not None:  # another incident of this service leads: follow it, no runbook of our own
            joined = follow_primary(rec, latest, primary, opts)
            if joined is not None:
                return joined
            latest = runtime.store().get_incident(rec.incident.id, with_timeline=False)
        if latest.severity == Severity.P4:
            return p4(rec, latest)
        if latest.severity == Severity.P3:
            return p3(rec, Comms(rec), latest, opts)
        return urgent(rec, latest, opts)
