"""When automation cannot restore the service: escalate to the team lead at once (paging on P1) and hand
over: the run pauses with a form in the Prefect UI (`HandOver`: acknowledge, resolve with root cause and
resolution) for up to the hand-over timeout, status updates and escalation timers going on meanwhile.

Usage::

    resolution = hand_over(rec, comms, board, watch, result, opts)   # None: nobody resolved it in time
"""

from __future__ import annotations

import time
from datetime import timedelta

from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from flows.approval import resume_running
from flows.comms import Comms
from flows.escalation import EscalationWatch
from flows.record import Record
from flows.response.options import Resolution, ResponseOptions, sentence
from flows.status_updates import Board
from flows.targets import probe_service
from runbook.messages import human_duration
from runbook.models import IncidentStatus, RunbookResult, utc_now
from runbook.policy import Contact, EscalationStep
from runbook.severity import Severity
from tasks import runtime

__all__ = ["HandOver", "hand_over"]


class HandOver(RunInput):
    """The form the Prefect UI shows while `respond` waits for a person (resume the run to answer)."""

    acknowledged_by: str = Field("", description="Your name: you take the incident (stops the escalation)")
    resolved: bool = Field(False, description="The incident is over: verify and post the all-clear")
    root_cause: str = Field("", description="Root cause, for the all-clear")
    resolution: str = Field("", description="What fixed it, for the all-clear")


def hand_over(
    rec: Record,
    comms: Comms,
    board: Board,
    watch: EscalationWatch,
    result: RunbookResult,
    opts: ResponseOptions,
) -> Resolution | None:
    """Automation could not restore the service: escalate to the lead now, then wait for a person."""
    incident = comms.incident
    reason = f"automation could not restore the service ({result.outcome.value}: {result.summary})"[:300]
    step = EscalationStep(Contact.LEAD, timedelta(0), False, incident.severity == Severity.P1, reason)
    watch.escalate(incident, step, utc_now())
    board.status("Escalated to the team lead", f"Automation: {result.summary}"[:200])
    board.doing("Waiting for a person (Prefect UI: resume with the hand-over form)")
    rec.note("handover", f"waiting up to {human_duration(timedelta(seconds=opts.handover_s))} for a person")
    deadline = time.monotonic() + opts.handover_s
    n = 0
    while (remaining := int(deadline - time.monotonic())) >= 1:
        n += 1
        try:
            answer = pause_flow_run(
                wait_for_input=HandOver,
                timeout=remaining,
                poll_interval=opts.handover_poll_s,
                key=f"handover-{n}",
            )
        except FlowPauseTimeout:
            resume_running("no answer to the hand-over form in time")
            break
        if answer is None:
            continue
        if answer.acknowledged_by:
            watch.acknowledge(answer.acknowledged_by, "hand-over form in the Prefect UI")
        rec.note("handover", f"answer: acknowledged_by={answer.acknowledged_by!r} resolved={answer.resolved}")
        if answer.resolved:
            probe = probe_service()
            if probe.healthy:
                steps = [sentence(answer.resolution or result.summary)]
                runtime.store().set_status(
                    incident.id,
                    IncidentStatus.MITIGATED,
                    utc_now(),
                    f"person:{answer.acknowledged_by or 'unknown'}",
                )
                return Resolution(
                    summary=f"resolved by {answer.acknowledged_by or 'a person'}",
                    root_cause=answer.root_cause or result.summary,
                    resolution=steps,
                )
            comms.post("not-resolved", f"Not resolving: the service is still unhealthy ({probe.summary()})")
    comms.post(
        "handover-end", "Automation stops following this incident here; it stays open with the team lead."
    )
    return None
