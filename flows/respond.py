"""The entry point of every incident: the guide's response by level, communications and escalation.

Usage::

    respond(IncidentRef(incident_id=incident.id))            # what intake starts ("respond/respond")
    respond(IncidentRef(service="emotionscare", severity="P1", summary="homepage 500"))   # by hand
    respond(ref, status_update_interval_s=0.2, ack_deadline_scale=0.002,
            runbook_options={"settle_s": 0, "poll_interval_s": 0.05})                     # tests, drills

Guide sections, in the order the flow follows them:
- P1 - Critical Incident Response › Timeline: First 5 Minutes:
  *Minute 0-1 Acknowledge*: acknowledge in #alerts-critical, open the thread in #incidents (its ts is
  stored on the incident; every later message goes into it), trigger PagerDuty (one dedup_key per
  incident, stored), note the exact start time.
  *Minute 1-2 Assessment*: Sentry's latest error and stack trace; application crash / database /
  external API / infrastructure from the probes; CPU, memory, disk, network latency.
  *Minute 2-3 Triage*: affected services, user impact, customer-facing or internal, and the decision
  matrix (`runbook.policy.triage`) with its reason.
  *Minute 3-5 Action*: the matching runbook flow as a subflow (the incident's `runbook`, else the
  assessment's), then verify; healthy → mitigated, stable through `stability_window_s` → resolved,
  the all-clear in the guide's format, PagerDuty resolved on the same dedup_key.
- P2 - High Severity Response: assess (error rate, single feature or several, slowness or errors;
  P1 signals reclassify the incident to P1 and the P1 timeline runs), decide (the diagnosis flow of
  "Common P2 Issues"), fix or escalate within the 15 minutes.
- P3: assess impact, document the workaround, schedule the fix for the non-critical window
  (tasks/backlog.py), notify the team in #incidents; escalate only when several issues are open.
- P4: a backlog item (discuss in standup, next sprint); nobody is notified, nothing is paged.
- Communication During Incident: status updates in the thread every `status_update_interval_s`
  (settings: 5 min) while the incident is open (flows/escalation.py `StatusUpdates`), stopped before
  the all-clear.
- Escalation Contacts: escalation timers (flows/escalation.py `EscalationWatch`) on the level's response
  time × `ack_deadline_scale`; acknowledgement by a Slack reaction or by the resume form shown in the
  Prefect UI when the flow hands over to people.

When automation cannot restore the service, the flow escalates to the team lead at once (paging on
P1) and hands over: it pauses with a form in the Prefect UI (`HandOver`: acknowledge, resolve with
root cause and resolution) for up to `handover_timeout_s`, status updates and escalation timers going
on meanwhile.

One response per incident: the run claims `("respond", "lifecycle-N")` in the store. A second
`respond` for an open incident joins it (no second thread, no second page): it follows the incident
until it is resolved or `join_timeout_s` passes, and takes over (generation N+1) only if the first run
has ended without resolving it; every message, page and action being claimed once, a takeover repeats
none of them.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from prefect import flow, get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, ObjectNotFound
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field

from flows import catalogue
from flows.approval import resume_running
from flows.escalation import Board, Comms, EscalationWatch, StatusUpdates, background, human_duration
from flows.p2 import (
    Infrastructure,
    MetricsUnavailable,
    check_infrastructure,
    deploy_correlation,
    read_metrics,
    sentry_grouping,
)
from flows.record import Record
from flows.targets import probe_service, target_workload
from runbook.messages import AllClear, clock, format_duration, header_label, render_all_clear, whole_minutes
from runbook.models import (
    ActionStatus,
    Evidence,
    Incident,
    IncidentRef,
    IncidentStatus,
    RunbookOutcome,
    RunbookResult,
    utc_now,
)
from runbook.policy import Contact, EscalationStep, Triage, TriageDecision, triage
from runbook.severity import LEVELS, Severity
from tasks import runtime
from tasks.backlog import BacklogItem, add_backlog_item, next_window
from tasks.external_apis import ApiStatus, check_external_api
from tasks.health import ServiceProbe, Verdict

__all__ = ["Assessment", "FailureKind", "HandOver", "TriageResult", "assess", "respond", "triage_incident"]

RUNBOOK = "respond"
P2_DIAGNOSES = ("error-rate-spike", "performance-degradation", "feature-broken")
FIXED = (
    RunbookOutcome.RECOVERED,
    RunbookOutcome.RECOVERED_BY_ITSELF,
    RunbookOutcome.ROLLED_BACK,
    RunbookOutcome.MITIGATED,
)


class HandOver(RunInput):
    """The form the Prefect UI shows while `respond` waits for a person (resume the run to answer)."""

    acknowledged_by: str = Field("", description="Your name: you take the incident (stops the escalation)")
    resolved: bool = Field(False, description="The incident is over: verify and post the all-clear")
    root_cause: str = Field("", description="Root cause, for the all-clear")
    resolution: str = Field("", description="What fixed it, for the all-clear")


# --- Minute 1-2: Assessment -------------------------------------------------------------------------------


class FailureKind(StrEnum):
    """The guide's "Determine if": application crash, database, external API, infrastructure."""

    APPLICATION_CRASH = "application crash"
    DATABASE = "database issue"
    EXTERNAL_API = "external API failure"
    INFRASTRUCTURE = "infrastructure failure"
    NONE = "no failure observed"


class Assessment(BaseModel):
    kind: FailureKind
    why: str
    runbook: str
    probe: ServiceProbe
    infra: Infrastructure
    apis_down: list[str] = Field(default_factory=list)
    sentry_error: str = ""
    sentry_stack: list[str] = Field(default_factory=list)
    sentry_users: int = 0
    deployed: str = ""
    recent_deploy: bool = False
    revision: int | None = None
    images: list[str] = Field(default_factory=list)

    def text(self) -> str:
        """The thread message: what failed, Sentry's error and stack, deploys, system metrics."""
        cpu = f"{self.infra.cpu_pct:.0f}%" if self.infra.cpu_pct is not None else "not reported"
        mem = f"{self.infra.memory_pct:.0f}%" if self.infra.memory_pct is not None else "not reported"
        lines = [
            "Assessment (minute 1-2)",
            f"- Failure: {self.kind.value}: {self.why}",
            f"- Sentry: {self.sentry_error or 'no unresolved error'}",
            *[f"    {frame}" for frame in self.sentry_stack[-5:]],
            f"- Deploy: {self.deployed or 'unknown'}",
            f"- System: CPU {cpu}, memory {mem} (busiest node); disk space: not reported by the metrics API; "
            f"network latency: /health {self.probe.health.latency_ms:.0f} ms",
        ]
        if self.apis_down:
            lines.append(f"- External APIs down: {', '.join(self.apis_down)}")
        return "\n".join(lines)


def assess(rec: Record, incident: Incident, rollback_window_min: int = 15) -> Assessment:
    """Minute 1-2: Sentry, the kind of failure from the probes, system metrics, recent deploys."""
    target = target_workload()
    settings = runtime.settings()
    probe = probe_service()
    rec.add_evidence(Evidence(kind="health", title="health probes", content=probe.summary()))
    infra = check_infrastructure(rec, target)
    apis: list[ApiStatus] = [
        check_external_api(a.name, str(a.health_url), settings.service.http_timeout_s)
        for a in settings.external_apis
    ]
    down = [a.name for a in apis if not a.up]
    issues = sentry_grouping(rec)
    latest = next((e for e in rec.evidence if e.title.startswith("Sentry: latest event")), None)
    deploy = deploy_correlation(rec, target, rollback_window_min)
    api_detail = probe.api_health.detail.lower()

    if infra.database_down:
        kind, why, runbook = FailureKind.DATABASE, f"SELECT 1 fails ({infra.line()})", "database-lost"
    elif probe.verdict == Verdict.INFRASTRUCTURE:
        kind, why = FailureKind.INFRASTRUCTURE, f"/health {probe.health.failure.value}: {probe.health.line()}"
        runbook = "resource-exhaustion" if infra.saturated else "service-down"
    elif probe.verdict == Verdict.APPLICATION and ("database" in api_detail or "pool" in api_detail):
        kind, why, runbook = (
            FailureKind.DATABASE,
            f"/api/health 500: {probe.api_health.detail[:200]}",
            "database-lost",
        )
    elif probe.verdict == Verdict.APPLICATION:
        kind, why = (
            FailureKind.APPLICATION_CRASH,
            f"/api/health {probe.api_health.status_code} while /health answers",
        )
        runbook = "service-down"
    elif down:
        kind, why, runbook = FailureKind.EXTERNAL_API, f"{', '.join(down)} down", "external-api-failure"
    elif infra.saturated:
        kind, why, runbook = (
            FailureKind.INFRASTRUCTURE,
            f"resources under pressure: {infra.line()}",
            "resource-exhaustion",
        )
    else:
        kind, why, runbook = (
            FailureKind.NONE,
            f"both health endpoints answer ({probe.summary()})",
            "service-down",
        )
    found = Assessment(
        kind=kind,
        why=why,
        runbook=runbook,
        probe=probe,
        infra=infra,
        apis_down=down,
        sentry_error=f"{issues[0].title} ({issues[0].culprit})" if issues else "",
        sentry_stack=(latest.data or {}).get("frames", []) if latest else [],
        sentry_users=issues[0].user_count if issues else 0,
        deployed=deploy.line(utc_now()),
        recent_deploy=deploy.recent,
        revision=deploy.current.revision if deploy.current else None,
        images=deploy.current.images if deploy.current else [],
    )
    rec.note("assess", f"{kind.value}: {why}", evidence={"kind": kind.value, "runbook": runbook})
    return found


# --- Minute 2-3: Triage -----------------------------------------------------------------------------------


class TriageResult(BaseModel):
    affected: str
    impact: str
    customer_facing: bool
    estimated_fix_min: float | None
    decision: str
    rule: str
    reason: str
    runbook: str

    def text(self) -> str:
        audience = "customer-facing" if self.customer_facing else "internal"
        return "\n".join(
            [
                "Triage (minute 2-3)",
                f"- Affected: {self.affected}",
                f"- Impact: {self.impact} ({audience})",
                f"- Decision: {self.decision.replace('_', ' ').upper()}: {self.reason}",
                f"- Action: {self.runbook} runbook",
            ]
        )


# Estimated time of the known quick fix per kind of failure (the runbook's own first remedy).
_QUICK_FIX_MIN = {
    FailureKind.DATABASE: 2.0,  # restart the connection pool
    FailureKind.EXTERNAL_API: 1.0,  # turn the feature flag off
}
_HOTFIX_MIN = 15.0  # fixing a bad release in code: write, review, build, deploy


def triage_incident(
    rec: Record, incident: Incident, found: Assessment, fix_limit: timedelta = timedelta(minutes=5)
) -> TriageResult:
    """Minute 2-3: affected services, impact, audience, the decision matrix and the runbook, with why."""
    settings = runtime.settings()
    services = sorted(
        {incident.service, *(a.service for a in runtime.store().list_alerts(incident_id=incident.id))}
    )
    everything = found.kind in (
        FailureKind.APPLICATION_CRASH,
        FailureKind.INFRASTRUCTURE,
        FailureKind.DATABASE,
    )
    affected = f"{', '.join(services)}: " + ("all requests" if everything else "specific features")
    if everything:
        impact = "All users affected"
    elif found.kind == FailureKind.EXTERNAL_API:
        features = [settings.api(n).feature for n in found.apis_down]
        impact = f"Users of {', '.join(features)} affected"
    elif found.sentry_users:
        impact = f"{found.sentry_users} users affected (Sentry)"
    else:
        impact = "No user impact observed now"
    estimate: float | None
    if found.kind in _QUICK_FIX_MIN:
        estimate = _QUICK_FIX_MIN[found.kind]
    elif found.kind == FailureKind.INFRASTRUCTURE and found.infra.saturated:
        estimate = 3.0  # scale up
    elif found.kind == FailureKind.APPLICATION_CRASH and found.recent_deploy:
        estimate = _HOTFIX_MIN  # the cause is known (the deploy); a code fix is slower than a rollback
    else:
        estimate = None  # unknown cause
    if found.kind == FailureKind.NONE:
        decision = TriageDecision(
            Triage.ATTEMPT_FIX, "healthy", "service healthy now: confirm, no change expected"
        )
    else:
        decision = triage(
            None if estimate is None else timedelta(minutes=estimate),
            cause_known=estimate is not None,
            limit=fix_limit,
        )
    chosen = incident.runbook if incident.runbook in _runbooks() else found.runbook
    if decision.action == Triage.ROLLBACK and incident.runbook not in _runbooks():
        chosen = "service-down"  # the runbook that rolls back
    result = TriageResult(
        affected=affected,
        impact=impact,
        customer_facing=incident.service == settings.service.name,
        estimated_fix_min=estimate,
        decision=decision.action.value,
        rule=decision.rule,
        reason=decision.reason,
        runbook=chosen,
    )
    rec.note(
        "triage",
        f"{decision.action.value} ({decision.rule}): {decision.reason}; runbook {chosen}",
        evidence=result.model_dump(),
    )
    return result


# --- Minute 3-5: Action -----------------------------------------------------------------------------------


def _runbooks() -> dict[str, Callable[..., Any]]:
    """The runbook flows respond may run (the catalogue's entries tagged `runbook`), by name."""
    return {e.name: e.flow for e in catalogue.entries() if "runbook" in e.tags}


def run_runbook(
    rec: Record, name: str, incident: Incident, options: dict[str, Any], dry_run: bool
) -> RunbookResult:
    """Call the runbook flow as a subflow, with the options it takes (the others are noted, not passed)."""
    runbook = _runbooks()[name]
    accepted = set(inspect.signature(runbook.fn).parameters)  # type: ignore[attr-defined]
    passed = {k: v for k, v in options.items() if k in accepted and k not in ("incident", "dry_run")}
    ignored = sorted(set(options) - set(passed))
    if ignored:
        rec.note("act", f"{name} takes no {', '.join(ignored)}: not passed")
    rec.note("act", f"running {name}" + (f" with {passed}" if passed else ""))
    result: RunbookResult = runbook(IncidentRef(incident_id=incident.id), dry_run=dry_run, **passed)
    rec.add_evidence(
        Evidence(
            kind="runbook",
            title=f"{name}: {result.outcome.value}",
            content=result.summary,
            data={"runbook": name},
        )
    )
    for item in result.evidence:
        if item.kind == "follow-up":
            rec.add_evidence(item)
    return result


# --- the flow ---------------------------------------------------------------------------------------------


@flow(
    name=RUNBOOK,
    description="Every incident: the guide's P1 timeline or P2/P3/P4 response, comms, escalation.",
)
def respond(
    incident: IncidentRef | None = None,
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
) -> RunbookResult:
    """Respond to an incident the way the guide runs one, by its level (P1 timeline, P2, P3, P4).

    Args:
        incident: the incident; empty: open (or join) one for this service, started by hand
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
    """
    rec = Record.open(
        RUNBOOK, incident or IncidentRef(summary="incident response started by hand"), dry_run=dry_run
    )
    next_window(utc_now(), fix_window_utc)  # bad windows fail here, before anything is sent
    next_window(utc_now(), postmortem_time_utc)
    current = runtime.store().get_incident(rec.incident.id, with_timeline=False)
    if not current.is_open:
        return rec.finish(
            RunbookOutcome.RECOVERED,
            f"incident already resolved at {clock(current.resolved_at or utc_now())}",
        )
    params = _Params(
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
    if dry_run:
        return _respond(rec, params, None)
    key, owner = _claim_lifecycle(rec)
    deadline = time.monotonic() + join_timeout_s
    while owner is not None:
        # Join: follow the incident; take over only if its run ended without resolving it.
        rec.note(
            "join", f"respond run {owner} is handling this incident: joining it (no second thread or page)"
        )
        joined = _follow(rec, owner, deadline, params.poll_s)
        if joined is not None:
            return joined
        key, owner = _claim_lifecycle(rec)
    return _respond(rec, params, key)


class _Params(BaseModel):
    interval_s: float
    scale: float
    poll_s: float
    stability_s: float
    handover_s: int
    handover_poll_s: int
    options: dict[str, Any]
    workaround: str
    fix_window: str
    postmortem_at: str
    dry_run: bool


def _flow_run_id() -> str | None:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


def _run_active(run_id: str | None) -> bool:
    """Whether the Prefect flow run `run_id` is still going (paused counts as going)."""
    if run_id is None:
        return False
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(run_id))
    except (ObjectNotFound, ValueError):
        return False
    return run.state is not None and not run.state.is_final()


def _claim_lifecycle(rec: Record, generations: int = 1000) -> tuple[str | None, str | None]:
    """Claim the incident's response: (our claim's key, None), or (None, the run that has it).

    Each run claims `("respond", "lifecycle-N")`, N the first generation not finished: exactly one of
    concurrent runs wins it; the others join its owner. A generation whose run ended (resolved, left
    the incident open, or crashed: its claim is then marked failed) passes to the next.
    """
    store = runtime.store()
    mine = _flow_run_id()
    for n in range(1, generations + 1):
        claim = store.claim_action(
            rec.incident.id, "respond", f"lifecycle-{n}", run_id=mine, detail="manages the response"
        )
        record = claim.record
        if claim.won or (mine is not None and record.run_id == mine):
            if n > 1:
                rec.note(
                    "takeover", f"earlier respond runs have ended with the incident open: taking over ({n})"
                )
            return record.key, None
        if record.status == ActionStatus.CLAIMED:
            if _run_active(record.run_id):
                return None, record.run_id
            store.finish_action(
                record.key, ActionStatus.FAILED, f"run {record.run_id} ended without finishing"
            )
    raise RuntimeError(f"incident {rec.incident.id}: more than {generations} respond runs")


def _follow(rec: Record, owner: str, deadline: float, poll_s: float) -> RunbookResult | None:
    """Follow the incident until resolved (a result), the owner ends (None: take over) or the deadline."""
    store = runtime.store()
    while True:
        incident = store.get_incident(rec.incident.id, with_timeline=False)
        if not incident.is_open:
            return rec.finish(RunbookOutcome.RECOVERED, f"joined: resolved by respond run {owner}")
        if not _run_active(owner):
            return None
        if time.monotonic() + poll_s > deadline:
            outcome = (
                RunbookOutcome.MITIGATED
                if incident.status == IncidentStatus.MITIGATED
                else RunbookOutcome.ESCALATED
            )
            return rec.finish(
                outcome, f"joined: respond run {owner} is handling it (status {incident.status})"
            )
        time.sleep(poll_s)


def _respond(rec: Record, p: _Params, key: str | None) -> RunbookResult:
    """The response by level; the lifecycle claim `key` is finished whatever happens."""
    store = runtime.store()
    try:
        incident = store.get_incident(rec.incident.id, with_timeline=False)
        if incident.severity == Severity.P4:
            result = _p4(rec, incident)
        elif incident.severity == Severity.P3:
            result = _p3(rec, Comms(rec), incident, p)
        else:
            result = _urgent(rec, incident, p)
    except BaseException as exc:
        if key is not None:
            store.finish_action(key, ActionStatus.FAILED, f"the respond run failed: {type(exc).__name__}")
        raise
    if key is not None:
        still_open = store.get_incident(rec.incident.id, with_timeline=False).is_open
        store.finish_action(
            key, ActionStatus.SUCCEEDED, "ended with the incident open" if still_open else "resolved"
        )
    return result


# --- P1 and P2 --------------------------------------------------------------------------------------------


def _eta(decided: TriageResult) -> str:
    """The status update's "Estimated fix": a rollback within the P1 timeline, else the fix's estimate."""
    if decided.decision == Triage.ROLLBACK:
        return "Estimated fix: 5 minutes (rollback)"
    if decided.estimated_fix_min:
        return f"Estimated fix: {decided.estimated_fix_min:g} minutes"
    return "Estimated fix: unknown"


def _opener(incident: Incident, p: _Params) -> str:
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
            f"Status updates in this thread every {human_duration(timedelta(seconds=p.interval_s))}. "
            "React to this message to acknowledge.",
        ]
    )


def _urgent(rec: Record, incident: Incident, p: _Params) -> RunbookResult:
    """P1 (the first-5-minutes timeline) and P2 (assess, decide, fix or escalate), comms around both."""
    comms = Comms(rec)
    started = utc_now()
    label = f"{header_label(incident.severity)} {incident.title}"
    # Minute 0-1: Acknowledge
    comms.acknowledge_alert(
        f"👀 Acknowledged: {label} (started {clock(incident.started_at)}). "
        f"Responding in {runtime.settings().slack.incidents_channel}; react here to take it."
    )
    thread = comms.open_thread(_opener(incident, p))
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
    updates = StatusUpdates(comms.detached(), board, p.interval_s, anchor=anchor)
    watch = EscalationWatch(comms.detached(), deadline_scale=p.scale, poll_s=p.poll_s)
    workers = () if p.dry_run else (updates, watch)
    with background(*workers):
        if incident.severity == Severity.P1:
            result, resolution = _p1(rec, comms, board, incident, p)
        else:
            result, resolution = _p2(rec, comms, board, watch, incident, p)
        if resolution is None and not p.dry_run:
            resolution = _hand_over(rec, comms, board, watch, result, p)
    if resolution is None:
        return rec.finish(
            RunbookOutcome.DRY_RUN if p.dry_run else RunbookOutcome.ESCALATED,
            result.summary if p.dry_run else f"{result.summary}; handed over to people, incident open",
        )
    _all_clear(rec, comms, resolution, result, p, board.snapshot()[1])
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


class _Resolution(BaseModel):
    summary: str
    root_cause: str
    resolution: list[str]


def _p1(
    rec: Record, comms: Comms, board: Board, incident: Incident, p: _Params
) -> tuple[RunbookResult, _Resolution | None]:
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
        _eta(decided),
    )
    # Minute 3-5: Action
    step = "Rolling back" if decided.decision == Triage.ROLLBACK else "Applying the fix"
    board.doing(f"{step} ({decided.runbook})")
    result = run_runbook(rec, decided.runbook, incident, p.options, p.dry_run)
    comms.post("action", f"Action ({decided.runbook}): {result.outcome.value}: {result.summary}")
    board.done(f"{step} ({decided.runbook}): {result.outcome.value}", was=f"{step} ({decided.runbook})")
    if found.recent_deploy and found.kind == FailureKind.APPLICATION_CRASH:
        root = f"Bad deploy: revision {found.revision} ({', '.join(found.images)}): {found.sentry_error or found.why}"
    else:
        root = f"{found.kind.value.capitalize()}: {found.why}"
    return result, _verify(rec, comms, board, incident, result, root, p)


def _p2(
    rec: Record, comms: Comms, board: Board, watch: EscalationWatch, incident: Incident, p: _Params
) -> tuple[RunbookResult, _Resolution | None]:
    budget = LEVELS[Severity.P2].response_time * p.scale
    due = utc_now() + budget
    # Step 1: Assess (1 min): errors or slowness, one feature or several; P1 signals raise the level
    board.doing("Assessing (error rate, features, performance)")
    probe = probe_service()
    rec.add_evidence(Evidence(kind="health", title="health probes", content=probe.summary()))
    if probe.verdict in (Verdict.INFRASTRUCTURE, Verdict.APPLICATION):
        reason = f"service unavailable ({probe.summary()})"
        _reclassify(rec, comms, board, incident, Severity.P1, "p1.service_unavailable", reason)
        incident = runtime.store().get_incident(incident.id, with_timeline=False)
        _page(comms, incident)
        return _p1(rec, comms, board, incident, p)
    metrics = None
    try:
        metrics = read_metrics(300.0)
    except MetricsUnavailable as exc:
        rec.note("assess", f"metrics unavailable: {exc}")
    if incident.runbook in P2_DIAGNOSES:
        diagnosis = str(incident.runbook)
    elif metrics is not None and metrics.slow_routes(3000.0) and metrics.error_rate_pct <= 5.0:
        diagnosis = "performance-degradation"
    elif metrics is not None and metrics.error_rate_pct > 5.0:
        diagnosis = "error-rate-spike"
    else:
        diagnosis = "feature-broken"
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
    # Step 3: Fix or escalate (remaining time)
    result = run_runbook(rec, diagnosis, incident, p.options, p.dry_run)
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
    return result, _verify(rec, comms, board, incident, result, root, p)


def _reclassify(
    rec: Record, comms: Comms, board: Board, incident: Incident, level: Severity, rule: str, reason: str
) -> None:
    """Raise the level (P2 → P1): stored, so the escalation timers re-drive their deadlines at once."""
    runtime.store().update_incident(incident.id, severity=level, severity_rule=f"{rule} (reclassified)")
    rec.note("reclassify", f"{incident.severity} → {level}: {reason}")
    comms.post(f"reclassify-{level}", f"⬆️ Reclassified {incident.severity} → {level}: {reason}")
    board.done(f"Reclassified {incident.severity} → {level}")


def _verify(
    rec: Record, comms: Comms, board: Board, incident: Incident, result: RunbookResult, root: str, p: _Params
) -> _Resolution | None:
    """Verify service health, then stability through the window: a resolution, or None (not fixed)."""
    if p.dry_run or result.outcome not in FIXED:
        return None
    probe = probe_service()
    rec.note("verify", probe.summary())
    if not probe.healthy:
        comms.post("verify", f"Verify: still unhealthy after {result.runbook}: {probe.summary()}")
        return None
    store = runtime.store()
    store.set_status(
        incident.id, IncidentStatus.MITIGATED, utc_now(), rec.actor, f"mitigated: {result.summary}"
    )
    board.done("Service health verified")
    board.status("Service restored; monitoring for stability", f"Root cause: {root}"[:200])
    board.doing(f"Monitoring stability ({human_duration(timedelta(seconds=p.stability_s))})")
    comms.post(
        "verified",
        f"✓ Service health verified; watching {human_duration(timedelta(seconds=p.stability_s))} for stability",
    )
    probes = 3
    for _ in range(probes):
        time.sleep(p.stability_s / probes)
        probe = probe_service()
        if not probe.healthy:
            rec.note("verify", f"unstable: {probe.summary()}")
            comms.post("unstable", f"Not stable: {probe.summary()}")
            return None
    board.done("Stable", was=f"Monitoring stability ({human_duration(timedelta(seconds=p.stability_s))})")
    return _Resolution(summary=result.summary, root_cause=root, resolution=[_sentence(result.summary)])


def _hand_over(
    rec: Record, comms: Comms, board: Board, watch: EscalationWatch, result: RunbookResult, p: _Params
) -> _Resolution | None:
    """Automation could not restore the service: escalate to the lead now, then wait for a person."""
    incident = comms.incident
    reason = f"automation could not restore the service ({result.outcome.value}: {result.summary})"[:300]
    step = EscalationStep(Contact.LEAD, timedelta(0), False, incident.severity == Severity.P1, reason)
    watch.escalate(incident, step, utc_now())
    board.status("Escalated to the team lead", f"Automation: {result.summary}"[:200])
    board.doing("Waiting for a person (Prefect UI: resume with the hand-over form)")
    rec.note("handover", f"waiting up to {human_duration(timedelta(seconds=p.handover_s))} for a person")
    deadline = time.monotonic() + p.handover_s
    n = 0
    while (remaining := int(deadline - time.monotonic())) >= 1:
        n += 1
        try:
            answer = pause_flow_run(
                wait_for_input=HandOver,
                timeout=remaining,
                poll_interval=p.handover_poll_s,
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
                root = answer.root_cause or result.summary
                steps = [_sentence(answer.resolution)] if answer.resolution else [_sentence(result.summary)]
                runtime.store().set_status(
                    incident.id,
                    IncidentStatus.MITIGATED,
                    utc_now(),
                    f"person:{answer.acknowledged_by or 'unknown'}",
                )
                return _Resolution(
                    summary=f"resolved by {answer.acknowledged_by or 'a person'}",
                    root_cause=root,
                    resolution=steps,
                )
            comms.post("not-resolved", f"Not resolving: the service is still unhealthy ({probe.summary()})")
    comms.post(
        "handover-end", "Automation stops following this incident here; it stays open with the team lead."
    )
    return None


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


def _all_clear(
    rec: Record, comms: Comms, resolution: _Resolution, result: RunbookResult, p: _Params, estimate: str
) -> None:
    """Status updates have stopped: resolve, post the guide's all-clear, resolve the page."""
    store = runtime.store()
    incident = comms.incident
    now = utc_now()
    impact, numbers = _impact(incident, now, p, estimate)
    follow_up = _follow_up(rec, incident, now, p)
    store.set_status(incident.id, IncidentStatus.RESOLVED, now, rec.actor, f"resolved: {resolution.summary}")
    message = AllClear(
        title=incident.title if incident.title.lower().endswith("incident") else f"{incident.title} Incident",
        started_at=incident.started_at,
        resolved_at=now,
        root_cause=resolution.root_cause[:300],
        impact=impact,
        resolution=[*resolution.resolution, "All services back to normal", *numbers],
        follow_up=follow_up,
    )
    comms.post("all-clear", render_all_clear(message))
    if comms.paged():
        comms.page("resolve", "resolve")
    _start_postmortem(rec, incident)


def _start_postmortem(rec: Record, incident: Incident) -> None:
    """Post-Incident: the post-mortem run of this incident (once: keyed by the incident), not awaited."""
    from prefect.deployments import run_deployment

    name = runtime.settings().prefect.postmortem_deployment
    try:
        run = run_deployment(
            name,
            parameters={"incident_id": incident.id},
            timeout=0,
            idempotency_key=f"postmortem:{incident.id}",
            as_subflow=False,
        )
    except ObjectNotFound:
        rec.note(
            "postmortem", f"no deployment {name!r}: run the post-mortem by hand (incident {incident.id})"
        )
        return
    except Exception as exc:  # the all-clear is out; a post-mortem that cannot start is said, not fatal
        rec.note("postmortem", f"could not start {name!r}: {type(exc).__name__}: {exc}"[:300])
        return
    rec.note(
        "postmortem", f"post-mortem started: {name} run {getattr(run, 'name', '')} ({getattr(run, 'id', '')})"
    )


def _impact(incident: Incident, now: datetime, p: _Params, estimate: str) -> tuple[str, list[str]]:
    """ "150 requests failed (0.3% of total)" over the incident, and the error rate and p95 now.

    Without the service's metrics, or with no request recorded while it lasted, the triage's estimate
    for the incident's duration ("All users affected for 8 minutes").
    """
    window = max(1.0, (now - incident.started_at).total_seconds())
    lasted = format_duration(whole_minutes(incident.started_at, now))
    try:
        during = read_metrics(window)
        after = read_metrics(max(1.0, p.stability_s))
    except MetricsUnavailable:
        return f"{estimate} for {lasted} (no metrics)", []
    if not during.requests:
        impact = f"{estimate} for {lasted} (no requests recorded)"
    else:
        impact = (
            f"{during.errors} requests failed ({round(100 * during.errors / during.requests, 2):g}% of total)"
        )
    if not after.requests:
        return impact, []
    return impact, [f"Error rate: {after.error_rate_pct:g}%", f"P95 response time: {after.p95_ms:g}ms"]


def _follow_up(rec: Record, incident: Incident, now: datetime, p: _Params) -> list[str]:
    """Post-mortem within 24 hours (scheduled on the backlog), the runbook's own follow-ups, alerting."""
    due = next_window(now, p.postmortem_at, min_lead=timedelta(hours=1))
    day = "today" if due.date() == now.astimezone(UTC).date() else "tomorrow"
    add_backlog_item(
        BacklogItem.for_incident(
            incident,
            kind="post-mortem",
            title=f"Post-mortem: {incident.title}",
            description=incident.id,
            due=due,
        )
    )
    lines = [f"Post-mortem scheduled for {due:%H:%M} UTC {day}"]
    lines += [e.title.capitalize() if e.title else e.kind for e in rec.evidence if e.kind == "follow-up"][:3]
    lines.append(f"Alerting reviewed to catch '{incident.title}' earlier")
    return lines


# --- P3 and P4 --------------------------------------------------------------------------------------------


def _p3(rec: Record, comms: Comms, incident: Incident, p: _Params) -> RunbookResult:
    """P3: assess impact, document the workaround, schedule the fix, notify the team; never page."""
    store = runtime.store()
    probe = probe_service()
    rec.note("assess", f"impact: {probe.summary()}")
    alerts = store.list_alerts(incident_id=incident.id)
    workaround = p.workaround or next(
        (a.annotations["workaround"] for a in alerts if "workaround" in a.annotations), ""
    )
    if workaround:
        rec.note("workaround", f"workaround: {workaround}")
    else:
        rec.note("workaround", "no workaround documented yet: asked in #incidents")
    due = next_window(utc_now(), p.fix_window)
    entry = add_backlog_item(
        BacklogItem.for_incident(
            incident,
            kind="fix",
            title=f"Fix: {incident.title}",
            description=f"Workaround: {workaround or 'none documented'}. Incident {incident.id}.",
            due=due,
        )
    )
    others = [
        i
        for i in store.list_incidents(open_only=True)
        if i.id != incident.id and i.service == incident.service
    ]
    lines = [
        f"{header_label(incident.severity)} {incident.title}",
        "",
        f"Time: {clock(incident.started_at)}",
        f"Impact: {'workaround available' if workaround else 'no workaround documented yet: reply here if you know one'}",
        f"Workaround: {workaround or 'none yet'}",
        f"Fix scheduled: {due:%Y-%m-%d %H:%M} UTC (non-critical window)",
        "No escalation (P3).",
    ]
    comms.send("notify-team", runtime.settings().slack.incidents_channel, "\n".join(lines))
    if others:
        # "No need to escalate unless multiple issues"
        slack = runtime.settings().slack
        comms.send(
            "multiple-issues",
            slack.incidents_channel,
            f"🚨 {slack.lead_handle}: {len(others) + 1} open incidents on {incident.service}; escalating ({incident.title})",
        )
        rec.note("escalate", f"multiple issues: {len(others) + 1} open incidents on {incident.service}")
    return rec.finish(
        RunbookOutcome.MITIGATED,
        f"P3: {'workaround documented' if workaround else 'no workaround yet'}; fix scheduled for "
        f"{due:%Y-%m-%d %H:%M} UTC ({entry.ref}); team notified",
    )


def _p4(rec: Record, incident: Incident) -> RunbookResult:
    """P4: add to backlog (discuss in standup, schedule in next sprint); no notification, no page."""
    entry = add_backlog_item(
        BacklogItem.for_incident(
            incident,
            kind="backlog",
            title=incident.title,
            description=f"P4 from incident {incident.id}: discuss in standup, schedule in next sprint.",
        )
    )
    rec.note("backlog", f"added to the backlog ({entry.ref}): discuss in standup, schedule in next sprint")
    return rec.finish(RunbookOutcome.MITIGATED, f"P4: added to the backlog ({entry.ref}); no escalation")
