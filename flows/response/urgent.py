"""Guide: P1 - Critical Incident Response (Timeline: First 5 Minutes) and P2 - High Severity Response
(Timeline: First 15 Minutes), with the communication around both.

P1, minute by minute: acknowledge in #alerts-critical, open the thread in #incidents (its ts stored on the
incident; every later message goes into it), trigger PagerDuty (one dedup_key per incident), note the
exact start time (0-1); assessment (1-2, `assess`); triage (2-3, `triage`); the runbook, then verify
(3-5, `act`, `verify`). P2: assess (error rate, single feature or several, slowness or errors; P1
signals reclassify the incident to P1 and the P1 timeline runs), decide (the diagnosis of "Common P2
Issues", `runbook.policy.p2_diagnosis`), fix or escalate within the 15 minutes.

Around both: status updates in the thread (flows/status_updates.py) and escalation timers
(flows/escalation.py) in the background; the level raised while the response runs (a worse alert joined,
or P2 → P1 here) re-drives the escalation to the new level's timeline, said in the thread. Not fixed →
hand over to people (`handover`); fixed and stable → the all-clear (`all_clear`).

Usage::

    result = urgent(rec, incident, opts)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flows.background import background
from flows.comms import Comms
from flows.diagnoses import MetricsUnavailable, read_metrics
from flows.escalation import EscalationWatch
from flows.record import Record
from flows.response.act import run_runbook
from flows.response.all_clear import all_clear
from flows.response.assess import assess
from flows.response.handover import hand_over
from flows.response.options import FIXED, Resolution, ResponseOptions
from flows.response.triage import triage_incident
from flows.response.verify import earlier_result, verify
from flows.status_updates import Board, StatusUpdates
from flows.targets import probe_service
from runbook.messages import clock, header_label, human_duration
from runbook.models import Evidence, Incident, RunbookOutcome, RunbookResult, utc_now
from runbook.policy import P2_SLOW_MS, Triage, p2_diagnosis
from runbook.severity import LEVELS, Severity
from tasks import runtime
from tasks.health import Verdict

__all__ = ["urgent"]


def _opener(incident: Incident, opts: ResponseOptions) -> str:
    slack = runtime.settings().slack
    return "\n".join(
        [
            f"{header_label(incident.severity)} {incident.title}",
            "",
            f"Time: {clock(incident.started_at)}",
            f"Service: {incident.service}",
            f"Severity: {LEVELS[incident.severity].label} ({incident.severity_rule})",
            f"On-call: {slack.oncall_handle}",
            f"Incident: {incident.id}",
            "",
            f"Status updates in this thread every {human_duration(timedelta(seconds=opts.interval_s))}. "
            "React to this message to acknowledge.",
        ]
    )


def urgent(rec: Record, incident: Incident, opts: ResponseOptions) -> RunbookResult:
    """P1 (the first-5-minutes timeline) and P2 (assess, decide, fix or escalate), comms around both."""
    comms = Comms(rec)
    started = utc_now()
    label = f"{header_label(incident.severity)} {incident.title}"
    # Minute 0-1: Acknowledge
    comms.acknowledge_alert(
        f"👀 Acknowledged: {label} (started {clock(incident.started_at)}). "
        f"Responding in {runtime.settings().slack.incidents_channel}; react here to take it."
    )
    thread = comms.open_thread(_opener(incident, opts))
    if incident.severity == Severity.P1:
        _page(comms, incident)
    rec.note(
        "start",
        f"issue started at {incident.started_at:%H:%M:%S} UTC (from the alert); response started at "
        f"{started:%H:%M:%S} UTC",
        evidence={
            "issue_started_at": incident.started_at.isoformat(),
            "response_started_at": started.isoformat(),
        },
    )
    board = Board(title=incident.title)
    board.done("Acknowledged and incident thread opened")
    anchor = datetime.fromtimestamp(float(thread[1]), UTC) if thread else started
    updates = StatusUpdates(comms.detached(), board, opts.interval_s, anchor=anchor)
    watch = EscalationWatch(
        comms.detached(), deadline_scale=opts.scale, poll_s=opts.poll_s, level=incident.severity
    )
    with background(*(() if opts.dry_run else (updates, watch))):
        if incident.severity == Severity.P1:
            result, resolution = _p1(rec, comms, board, incident, opts)
        else:
            result, resolution = _p2(rec, comms, board, watch, incident, opts)
        if resolution is None and not opts.dry_run:
            resolution = hand_over(rec, comms, board, watch, result, opts)
    if resolution is None:
        return rec.finish(
            RunbookOutcome.DRY_RUN if opts.dry_run else RunbookOutcome.ESCALATED,
            result.summary if opts.dry_run else f"{result.summary}; handed over to people, incident open",
        )
    all_clear(rec, comms, resolution, result, opts, board.snapshot()[1])
    return rec.finish(
        result.outcome if result.outcome in FIXED else RunbookOutcome.RECOVERED, resolution.summary
    )


def _page(comms: Comms, incident: Incident) -> None:
    """P1: "If PagerDuty alert: Accept it immediately" — here we raise it: one alert per incident."""
    comms.page(
        "trigger",
        "trigger",
        summary=f"[{incident.severity}] {incident.title}",
        details={"incident": incident.id, "service": incident.service, "rule": incident.severity_rule},
    )


def _p1(
    rec: Record, comms: Comms, board: Board, incident: Incident, opts: ResponseOptions
) -> tuple[RunbookResult, Resolution | None]:
    settings = runtime.settings()
    # Minute 1-2: Assessment
    board.doing("Assessing (Sentry, probes, metrics)")
    found = assess(rec, incident, settings.deploys.rollback_window_min)
    comms.post("assessment", found.text())
    board.done("Assessing (Sentry, probes, metrics)")
    board.done(f"Identified: {found.kind.value}")
    # Minute 2-3: Triage
    decided = triage_incident(rec, incident, found, timedelta(minutes=settings.response.fix_time_limit_min))
    comms.post("triage", decided.text())
    board.set_impact(decided.impact)
    board.status(
        f"{found.kind.value.capitalize()}: {found.why}"[:200],
        f"Error messages: {found.sentry_error}"[:200] if found.sentry_error else "",
        f"Affected: {decided.affected}",
        decided.eta(),
    )
    # Minute 3-5: Action, then verify
    step = "Rolling back" if decided.decision == Triage.ROLLBACK else "Applying the fix"
    board.doing(f"{step} ({decided.runbook})")
    # Taking over from a generation that was verifying: go on verifying, the fix is not made again.
    result = earlier_result(rec) or run_runbook(rec, decided.runbook, incident, opts.options, opts.dry_run)
    comms.post("action", f"Action ({decided.runbook}): {result.outcome.value}: {result.summary}")
    board.done(f"{step} ({decided.runbook}): {result.outcome.value}", was=f"{step} ({decided.runbook})")
    return result, verify(rec, comms, board, incident, result, found.root_cause(), opts)


def _p2(
    rec: Record,
    comms: Comms,
    board: Board,
    watch: EscalationWatch,
    incident: Incident,
    opts: ResponseOptions,
) -> tuple[RunbookResult, Resolution | None]:
    budget = LEVELS[Severity.P2].response_time * opts.scale
    due = utc_now() + budget
    # Step 1: Assess (1 min): errors or slowness, one feature or several; P1 signals raise the level
    board.doing("Assessing (error rate, features, performance)")
    probe = probe_service()
    rec.add_evidence(Evidence(kind="health", title="health probes", content=probe.summary()))
    if probe.verdict in (Verdict.INFRASTRUCTURE, Verdict.APPLICATION):
        reason = f"service unavailable ({probe.summary()})"
        _reclassify(rec, board, watch, incident, Severity.P1, "p1.service_unavailable", reason)
        incident = runtime.store().get_incident(incident.id, with_timeline=False)
        _page(comms, incident)
        return _p1(rec, comms, board, incident, opts)
    metrics = None
    try:
        metrics = read_metrics(300.0)
    except MetricsUnavailable as exc:
        rec.note("assess", f"metrics unavailable: {exc}")
    diagnosis = p2_diagnosis(
        incident.runbook,
        metrics.error_rate_pct if metrics is not None else None,
        len(metrics.slow_routes(P2_SLOW_MS)) if metrics is not None else 0,
    )
    failing = sorted(r for r, m in (metrics.routes.items() if metrics else []) if m.errors)
    summary = (
        f"error rate {metrics.error_rate_pct:g}%, p95 {metrics.p95_ms:g} ms; failing: {', '.join(failing) or 'none'}"
        if metrics
        else "no metrics"
    )
    rec.note("assess", f"P2 step 1: {summary} → {diagnosis}")
    board.done("Assessing (error rate, features, performance)")
    # Step 2: Decide (1 min): fix in < 5 minutes, or escalate?
    comms.post(
        "decision",
        "\n".join(
            [
                "P2 assessment and decision",
                f"- Observed: {summary}",
                f"- Diagnosis: {diagnosis} (guide: Common P2 Issues)",
                f"- Fix or escalate by {clock(due)} ({human_duration(budget)})",
            ]
        ),
    )
    board.status(f"Diagnosing: {diagnosis}", f"Observed: {summary}"[:200])
    board.doing(f"Diagnosing ({diagnosis})")
    # Step 3: Fix or escalate (remaining time). Taking over from a generation whose diagnosis fixed the
    # service: go on verifying, the diagnosis (and its fix) is not run again.
    result = earlier_result(rec) or run_runbook(rec, diagnosis, incident, opts.options, opts.dry_run)
    conclusion = next((e for e in result.evidence if e.kind == "conclusion"), None)
    text = f"Diagnosis ({diagnosis}): {result.outcome.value}: {result.summary}"
    if conclusion is not None:
        text += f"\n{conclusion.title}: {conclusion.content.splitlines()[0]}"
    comms.post("diagnosis", text)
    board.done(f"Diagnosing ({diagnosis}): {result.outcome.value}", was=f"Diagnosing ({diagnosis})")
    if utc_now() > due:
        rec.note("deadline", f"the P2 budget of {human_duration(budget)} is spent")
    root = (
        conclusion.content.splitlines()[0]
        if conclusion is not None and conclusion.content
        else result.summary
    )
    return result, verify(rec, comms, board, incident, result, root, opts)


def _reclassify(
    rec: Record,
    board: Board,
    watch: EscalationWatch,
    incident: Incident,
    level: Severity,
    rule: str,
    reason: str,
) -> None:
    """Raise the level (P2 → P1): stored, so the escalation timers re-drive their deadlines at once."""
    runtime.store().update_incident(incident.id, severity=level, severity_rule=f"{rule} (reclassified)")
    rec.note("reclassify", f"{incident.severity} → {level}: {reason}")
    raised = runtime.store().get_incident(incident.id, with_timeline=False)
    watch.level_raised(raised, incident.severity, reason)
    board.done(f"Reclassified {incident.severity} → {level}")
