"""Guide: P1 › Minute 3-5 "then verify": service health after the fix, then stability through the window
(the incident is mitigated once healthy, ready for the all-clear once stable).

Usage::

    resolution = verify(rec, comms, board, incident, result, root_cause, opts)   # None: not fixed
    result = earlier_result(rec) or run_runbook(...)     # taking over: the fix is not made (or waited) again

A generation that takes the incident over (flows/response/ownership.py) while the earlier one was
verifying does not run the runbook (P1) or the diagnosis (P2) again (its rollout wait and settle): `earlier_result` gives the
outcome the earlier generation's runbook recorded, when it fixed the service, and verification goes on
from there: the probes are made again, messages already posted are not.
"""

from __future__ import annotations

import time
from datetime import timedelta

from flows.comms import Comms
from flows.record import Record
from flows.response.options import FIXED, Resolution, ResponseOptions, sentence
from flows.status_updates import Board
from flows.targets import probe_service
from runbook.messages import human_duration
from runbook.models import Incident, IncidentStatus, RunbookOutcome, RunbookResult, utc_now
from tasks import runtime

__all__ = ["STABILITY_PROBES", "earlier_result", "verify"]

STABILITY_PROBES = 3
"""How many times the service is probed across the stability window."""


def verify(
    rec: Record,
    comms: Comms,
    board: Board,
    incident: Incident,
    result: RunbookResult,
    root: str,
    opts: ResponseOptions,
) -> Resolution | None:
    """Verify service health, then stability through the window: a resolution, or None (not fixed)."""
    if opts.dry_run or result.outcome not in FIXED:
        return None
    probe = probe_service()
    rec.note("verify", probe.summary())
    if not probe.healthy:
        comms.post("verify", f"Verify: still unhealthy after {result.runbook}: {probe.summary()}")
        return None
    runtime.store().set_status(
        incident.id, IncidentStatus.MITIGATED, utc_now(), rec.actor, f"mitigated: {result.summary}"
    )
    window = human_duration(timedelta(seconds=opts.stability_s))
    board.done("Service health verified")
    board.status("Service restored; monitoring for stability", f"Root cause: {root}"[:200])
    board.doing(f"Monitoring stability ({window})")
    comms.post("verified", f"✓ Service health verified; watching {window} for stability")
    for _ in range(STABILITY_PROBES):
        time.sleep(opts.stability_s / STABILITY_PROBES)  # the window itself: the service must hold through it
        probe = probe_service()
        if not probe.healthy:
            rec.note("verify", f"unstable: {probe.summary()}")
            comms.post("unstable", f"Not stable: {probe.summary()}")
            return None
    board.done("Stable", was=f"Monitoring stability ({window})")
    return Resolution(summary=result.summary, root_cause=root, resolution=[sentence(result.summary)])


def earlier_result(rec: Record) -> RunbookResult | None:
    """Taking over: the runbook outcome an earlier generation recorded, when it fixed the service (else None).

    Only in a run that took the incident over (its timeline says `takeover`); the latest `outcome` a
    runbook subflow (not `respond`) stored for the incident, with its outcome among `FIXED`.
    """
    if rec.dry_run or not any(e.kind == "takeover" for e in rec.timeline):
        return None
    earlier = [
        e
        for e in runtime.store().timeline(rec.incident.id)
        if e.kind == "outcome"
        and e.actor.startswith("runbook:")
        and e.actor != rec.actor
        and e.evidence
        and e.evidence.get("outcome") in {o.value for o in FIXED}
    ]
    if not earlier:
        return None
    last = earlier[-1]
    evidence = last.evidence or {}
    runbook = last.actor.removeprefix("runbook:")
    outcome, summary = RunbookOutcome(evidence["outcome"]), str(evidence.get("summary") or "")
    rec.note(
        "takeover",
        f"{runbook} already ended {outcome.value} at {last.at:%H:%M:%S} UTC ({summary}): not run again; "
        "verification goes on from here",
    )
    return RunbookResult(
        runbook=runbook,
        incident_id=rec.incident.id,
        outcome=outcome,
        summary=summary,
        started_at=last.at,
        finished_at=last.at,
    )
