"""Guide: Running Incident Drill. "Monthly, run incident simulations" — four drills and the monthly run.

Usage::

    drill_high_error_rate()                              # the sandbox, the runbook started directly
    drill_database_failure(target="staging")             # staging: the runbooks' settings must say staging
    drill_external_api_failure(via="intake")             # the alert goes through intake, respond answers it
    drill_monthly(plan="rotate")                         # this month's scenario (prefect.yaml: monthly cron)

Each drill, in order:
1. Target check (runbook/drills.py `check_target`): the sandbox by default; staging when the runbooks'
   settings say staging; a target marked production is refused unless `allow_production=True` is given
   explicitly, and that permission is recorded. A refused drill touches nothing and ends Failed.
2. Inject the scenario's fault (tasks/drill_targets.py), after clearing any left over by an earlier drill.
3. Detect: the drill's monitor watches the symptom production monitoring would see, and raises the
   alert monitoring would send: to intake (`via="intake"`), or straight to the runbook (`via="runbook"`)
   or to `respond` (`via="respond"`) as a subflow.
4. Let the response run; a cause that ends by itself (an outage) is lifted after `outage_s`, one that
   needs people's fix (a slow query optimised) once the runbook is done.
5. Verify recovery independently (the monitor sees the symptom gone and the service healthy).
6. **Always** clear the fault: in a `finally` (runbook failure, a crash, a cancellation's SIGTERM), and
   again from the flow's cancellation and crash hooks.
7. Measure detect / acknowledge / mitigate / recover against the guide's targets, keep the result in the
   drill history, publish the report (artifact) and post it to Slack (#incidents).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext
from pydantic import Field

from runbook.drill_history import open_history
from runbook.drills import (
    DrillResult,
    DrillStatus,
    DrillTimes,
    Lift,
    Scenario,
    Symptom,
    check_target,
    improvements,
    judge,
    scenario,
    scenarios_for,
)
from runbook.errors import RunbookError
from runbook.models import (
    Alert,
    AlertSource,
    IncidentRef,
    IncidentStatus,
    Signals,
    TimelineEntry,
    new_id,
    utc_now,
)
from runbook.postmortem import (
    HistoryRow,
    drill_slack_text,
    history_rows,
    history_summary,
    render_drill_report,
)
from tasks import runtime
from tasks.drill_targets import FaultFailed, FaultTarget, open_target, target_environment
from tasks.health import HealthProbe, probe_url
from tasks.slack import SlackNotConfigured, post_message

__all__ = [
    "DrillOptions",
    "DrillRefused",
    "drill_database_failure",
    "drill_external_api_failure",
    "drill_high_error_rate",
    "drill_monthly",
    "drill_performance_degradation",
    "run_drill",
    "runbook_flow",
    "send_to_slack",
]

Via = Literal["runbook", "respond", "intake"]
ACTOR = "drill"


class DrillRefused(RunbookError):
    """The target may not be drilled (production without `allow_production`, or a mismatch)."""


@dataclass(frozen=True)
class DrillOptions:
    """A drill's parameters, as the flows take them."""

    target: str = "sandbox"
    allow_production: bool = False
    via: Via = "runbook"
    poll_interval_s: float = 1.0
    detect_deadline_s: float = 120.0
    recover_deadline_s: float = 600.0
    outage_s: float = 60.0
    runbook_parameters: dict[str, Any] = field(default_factory=dict)
    post_to_slack: bool = True


# --- what the drill's monitor sees ------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    at: datetime
    bad: bool
    detail: str


def observe(s: Scenario, *, recovery: bool = False) -> Observation:
    """One look at the scenario's symptom, as monitoring would take it (plain HTTP, no Prefect task:
    it runs in a poll loop). With `recovery`, "good" also needs the service healthy and, for an API
    outage, the feature back on."""
    settings = runtime.settings()
    svc = settings.service
    timeout = svc.http_timeout_s
    base = str(svc.base_url).rstrip("/")
    health = probe_url(base + svc.health_path, timeout)
    api_health = probe_url(base + svc.api_health_path, timeout)
    service_ok = health.ok and api_health.ok
    service_line = f"/health {_answer(health)}, /api/health {_answer(api_health)}"
    if s.symptom == Symptom.SERVICE:
        return Observation(utc_now(), not service_ok, service_line)
    if s.symptom == Symptom.API:
        api = settings.api(s.symptom_arg or "")
        probe = probe_url(str(api.health_url), timeout)
        if not recovery:
            return Observation(utc_now(), not probe.ok, f"{api.name} {_answer(probe)}")
        flag = _flag_value(api.feature_flag)
        good = probe.ok and service_ok and flag != "false"
        return Observation(
            utc_now(),
            not good,
            f"{api.name} {_answer(probe)}; {api.feature_flag}={flag}; {service_line}",
        )
    # Symptom.LATENCY: a synthetic check of the endpoint (the journal), timed as a user would feel it
    probe = probe_url(
        base + (s.symptom_arg or svc.api_health_path), max(timeout, s.latency_threshold_ms / 500)
    )
    slow = probe.status_code is None or probe.latency_ms > s.latency_threshold_ms
    detail = f"{s.symptom_arg} {_answer(probe)} in {probe.latency_ms:.0f} ms (threshold {s.latency_threshold_ms:.0f} ms)"
    return Observation(utc_now(), slow or (recovery and not service_ok), detail)


def _answer(probe: HealthProbe) -> str:
    return str(probe.status_code) if probe.status_code is not None else probe.failure.value


def _flag_value(flag: str) -> str | None:
    from flows.targets import target_workload
    from tasks.feature_flags import flag_backend

    return flag_backend(target_workload()).get(flag)


def watch(
    s: Scenario, *, until_bad: bool, deadline_s: float, poll_interval_s: float, recovery: bool = False
) -> Observation:
    """Observe every `poll_interval_s` until the symptom is there (`until_bad`) or gone; bounded."""
    deadline = time.monotonic() + deadline_s
    while True:
        obs = observe(s, recovery=recovery)
        if obs.bad == until_bad or time.monotonic() + poll_interval_s > deadline:
            return obs
        time.sleep(poll_interval_s)


# --- the drill's own record -------------------------------------------------------------------------------


@dataclass
class DrillLog:
    """The drill's timeline (its report), mirrored to the incident's once there is one, and logged."""

    entries: list[TimelineEntry] = field(default_factory=list)
    incident_id: str | None = None

    def note(self, kind: str, message: str, actor: str = ACTOR, at: datetime | None = None) -> TimelineEntry:
        entry = TimelineEntry(at=at or utc_now(), actor=actor, kind=kind, message=message)
        self.entries.append(entry)
        get_run_logger().info("[%s] %s", kind, message)
        if self.incident_id is not None:
            runtime.store().append_timeline(self.incident_id, entry)
        return entry


class Lifter:
    """Ends an outage after `outage_s` from injection, from a thread (the runbook keeps polling meanwhile)."""

    def __init__(self, target: FaultTarget, fault: str, delay_s: float) -> None:
        self.target = target
        self.fault = fault
        self.delay_s = delay_s
        self.lifted_at: datetime | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-lifter", daemon=True)

    def start(self) -> Lifter:
        self._thread.start()
        return self

    def _run(self) -> None:
        if self._stop.wait(self.delay_s):
            return
        try:
            self.target.lift(self.fault)
            self.lifted_at = utc_now()
        except Exception as exc:  # kept and reported by the drill; the final clear runs regardless
            self.error = f"{type(exc).__name__}: {exc}"

    def wait(self, timeout_s: float) -> None:
        """Let the outage run its course (bounded): the drill verifies recovery after it."""
        self._thread.join(timeout_s)

    def finish(self) -> None:
        """Stop waiting (if it has not lifted yet, it never will: the final clear follows) and join."""
        self._stop.set()
        self._thread.join(5.0)


# --- responding -------------------------------------------------------------------------------------------


def runbook_flow(name: str) -> Callable[..., Any]:
    """The flow called `name` in the catalogue (tests replace this to make a runbook fail)."""
    from flows.catalogue import flows_by_name

    flows = flows_by_name()
    if name not in flows:
        raise RunbookError(f"runbook {name!r} is not in the catalogue (known: {', '.join(sorted(flows))})")
    return flows[name]


def drill_alert(s: Scenario, drill_id: str) -> Alert:
    """The alert monitoring would send for this scenario, marked as a drill."""
    return Alert(
        source=AlertSource.DRILL,
        fingerprint=f"drill:{s.key}:{drill_id}",
        name=s.alert_name,
        service=runtime.settings().service.name,
        labels={"drill": drill_id, "scenario": s.key},
        annotations={"summary": s.summary},
        signals=Signals(**s.signals),
        starts_at=utc_now(),
    )


@dataclass
class Response:
    incident_id: str | None = None
    flow_run_id: str | None = None
    outcome: str | None = None
    error: str | None = None


def responder(s: Scenario, via: str) -> tuple[str, Callable[..., Any] | None]:
    """The flow that answers the alert (None: intake starts it), resolved (imported) before the fault
    goes in, so an unknown runbook fails the drill untouched and import time is not response time."""
    if via == "intake":
        return "respond", None
    name = s.runbook if via == "runbook" else "respond"
    return name, runbook_flow(name)


def respond_direct(
    s: Scenario, alert: Alert, opts: DrillOptions, log: DrillLog, start: Callable[..., Any]
) -> Response:
    """`via="runbook"` / `"respond"`: open the incident the alert would open, run the flow as a subflow."""
    store = runtime.store()
    store.add_alert(alert)
    incident, _created = store.open_incident_for(alert, s.severity, f"drill.{s.key}", s.runbook)
    log.incident_id = incident.id
    for entry in log.entries:  # the story so far, into the incident's timeline
        store.append_timeline(incident.id, entry)
    ref = IncidentRef(
        incident_id=incident.id, service=incident.service, severity=s.severity, summary=s.summary
    )
    if opts.via == "runbook":
        name, parameters = s.runbook, {**s.runbook_parameters, **opts.runbook_parameters}
    else:  # respond runs the runbook itself; the scenario's runbook options travel with it
        name, parameters = "respond", dict(opts.runbook_parameters)
        parameters["runbook_options"] = {**s.runbook_parameters, **parameters.get("runbook_options", {})}
    log.note("respond", f"starting {name} for incident {incident.id} as a subflow")
    try:
        result = start(incident=ref, **parameters)
    except Exception as exc:  # the runbook failing is what a drill is there to find: recorded, reported
        detail = f"{type(exc).__name__}: {exc}"[:500]
        log.note("respond-failed", f"{name} failed: {detail}")
        return Response(incident.id, error=detail)
    outcome = getattr(getattr(result, "outcome", None), "value", None) or str(
        getattr(result, "outcome", "done")
    )
    log.note("respond", f"{name} ended: {outcome}: {getattr(result, 'summary', '')}".rstrip(": "))
    return Response(incident.id, outcome=outcome)


def respond_via_intake(s: Scenario, alert: Alert, opts: DrillOptions, log: DrillLog) -> Response:
    """`via="intake"`: POST the alert to intake as monitoring would; wait for its incident and its run."""
    settings = runtime.settings()
    token = settings.intake.tokens.get("generic")
    host = "127.0.0.1" if settings.intake.host in ("0.0.0.0", "::") else settings.intake.host
    url = f"http://{host}:{settings.intake.port}/alerts/generic"
    body = {
        "alerts": [
            {
                "name": alert.name,
                "service": alert.service,
                "summary": alert.summary,
                "fingerprint": alert.fingerprint,
                "runbook": s.runbook,
                "severity": s.severity.value,
                "labels": alert.labels,
                "signals": alert.signals.observed(),
                "starts_at": alert.starts_at.isoformat() if alert.starts_at else None,
            }
        ]
    }
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    try:
        answer = httpx.post(url, json=body, headers=headers, timeout=settings.service.http_timeout_s)
    except httpx.HTTPError as exc:
        return Response(error=f"intake unreachable at {url}: {type(exc).__name__}: {exc}")
    if answer.status_code != 202:
        return Response(error=f"intake answered {answer.status_code}: {answer.text[:300]}")
    receipt = answer.json()
    opened = [*receipt.get("incidents_created", []), *receipt.get("incidents_joined", [])]
    if not opened:
        return Response(error=f"intake accepted the alert but opened no incident: {receipt}")
    incident_id = str(opened[0])
    log.note("alert", f"alert {alert.name} posted to intake ({url}): 202, incident {incident_id}")
    store = runtime.store()
    for entry in log.entries:  # the story so far, into the incident's timeline
        store.append_timeline(incident_id, entry)
    log.incident_id = incident_id
    deadline = time.monotonic() + opts.recover_deadline_s
    run_id, state = _wait_for_run(incident_id, deadline, opts.poll_interval_s)
    if run_id is None:
        return Response(incident_id, error="no flow run was started for the incident before the deadline")
    if state != "COMPLETED":
        return Response(incident_id, run_id, error=f"the incident's flow run ended {state}")
    outcomes = [e.message for e in store.timeline(incident_id) if e.kind == "outcome"]
    outcome = outcomes[-1].split(":", 1)[0] if outcomes else "completed"
    log.note("respond", f"flow run {run_id} of incident {incident_id} completed: {outcome}")
    return Response(incident_id, run_id, outcome=outcome)


def _wait_for_run(incident_id: str, deadline: float, poll_interval_s: float) -> tuple[str | None, str | None]:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    store = runtime.store()
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run_id = store.get_incident(incident_id, with_timeline=False).flow_run_id
            if run_id is not None:
                run = client.read_flow_run(UUID(run_id))
                if run.state is not None and run.state.is_final():
                    return run_id, run.state.type.value
            time.sleep(poll_interval_s)
        run_id = store.get_incident(incident_id, with_timeline=False).flow_run_id
    return run_id, "TIMED OUT"


# --- measuring --------------------------------------------------------------------------------------------


def measure(s: Scenario, incident_id: str, times: DrillTimes) -> None:
    """Acknowledged and mitigated, from the incident's record (status times, timeline, actions)."""
    store = runtime.store()
    incident = store.get_incident(incident_id)
    if incident.acknowledged_at is not None:
        by = next(
            (e.actor for e in incident.timeline if e.kind == "status" and "acknowledged" in e.message),
            "someone",
        )
        times.acknowledged_at, times.acknowledged_by = incident.acknowledged_at, f"acknowledged by {by}"
    else:
        took = next((e for e in incident.timeline if e.actor.startswith(("runbook:", "respond"))), None)
        if took is not None:
            times.acknowledged_at = took.at
            times.acknowledged_by = f"no acknowledgement; {took.actor} took the incident"
    candidates: list[tuple[datetime, str]] = []
    if incident.mitigated_at is not None:
        candidates.append((incident.mitigated_at, "incident marked mitigated"))
    for action in store.list_actions(incident_id):
        if (
            action.action in s.mitigating_actions
            and action.status.value == "succeeded"
            and action.finished_at
        ):
            candidates.append((action.finished_at, f"{action.action} succeeded"))
    if s.expected_conclusion is not None:  # a diagnosis: the right conclusion is the mitigation
        for e in incident.timeline:
            if e.kind == "conclusion" and (e.evidence or {}).get("conclusion") == s.expected_conclusion:
                candidates.append((e.at, f"{e.actor} diagnosed {s.expected_conclusion}"))
    if candidates:
        times.mitigated_at, times.mitigated_by = min(candidates)


# --- publishing -------------------------------------------------------------------------------------------


def send_to_slack(channel: str, text: str, thread_ts: str | None = None) -> str | None:
    """Post `text` to Slack through the Slack task (tasks/slack.py); returns the message's ts.

    No token configured: None (the caller records the report as not posted). Slack failing after the
    task's bounded retries: `SlackFailed`.
    """
    try:
        return post_message(channel, text, thread_ts=thread_ts).ts
    except SlackNotConfigured:
        return None


def _artifact_key(raw: str) -> str:
    import re

    return re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:100]


def publish(result: DrillResult, s: Scenario, opts: DrillOptions, log: DrillLog) -> None:
    """The report as an artifact, the row in the history (and its trend), the summary in Slack."""
    in_flow = FlowRunContext.get() is not None
    url = runtime.settings().store.url
    with open_history(url) as history:
        history.record(HistoryRow.of(result), report=result.model_dump_json())
        rows = history.list(limit=200)
    if in_flow:
        create_markdown_artifact(
            key=_artifact_key(f"drill-{s.key}"),
            markdown=render_drill_report(result, s),
            description=f"Drill {s.label}: {result.status.value}",
        )
        publish_history(rows)
    if not opts.post_to_slack or result.status == DrillStatus.REFUSED:
        return
    channel = runtime.settings().slack.incidents_channel
    try:
        ts = send_to_slack(channel, drill_slack_text(result, s))
    except RunbookError as exc:  # SlackFailed: the report exists as an artifact either way
        log.note("slack", f"drill report not delivered to {channel}: {type(exc).__name__}: {exc}")
        return
    log.note(
        "slack", f"drill report posted to {channel}" if ts else "Slack not configured: report not posted"
    )


def publish_history(rows: list[HistoryRow]) -> None:
    """The drill history (newest first, MTTR trend per scenario) and its summary as table artifacts."""
    create_table_artifact(key="drill-history", table=history_rows(rows), description="Drills: MTTR trend")
    create_table_artifact(key="drill-summary", table=history_summary(rows), description="Drills per scenario")


# --- the drill --------------------------------------------------------------------------------------------


@dataclass
class Exercise:
    """Steps 2-5 of a drill: inject, detect, respond, let the cause go, verify. `times` and `response`
    hold what happened so far, whatever stopped it; `stop()` ends a pending outage timer."""

    s: Scenario
    opts: DrillOptions
    target: FaultTarget
    log: DrillLog
    drill_id: str
    start: Callable[..., Any] | None
    times: DrillTimes = field(default_factory=DrillTimes)
    response: Response = field(default_factory=lambda: Response())
    lifter: Lifter | None = None
    inject_error: str | None = None

    def run(self) -> None:
        s, opts, log, times = self.s, self.opts, self.log, self.times
        leftover = self.target.active()
        if leftover:
            log.note("clean", f"faults left over by an earlier run cleared first: {', '.join(leftover)}")
            self.target.clear()
        # 2. Inject ("Simulate: ...")
        try:
            self.target.inject(s.fault, s.fault_args)
        except FaultFailed as exc:
            self.inject_error = f"fault {s.fault_text} could not be injected: {exc}"
            log.note("inject", self.inject_error)
            return
        times.injected_at = log.note("inject", f"{s.label}: {s.simulate} → fault {s.fault_text}").at
        # 3. Detect, as monitoring would
        obs = watch(
            s, until_bad=True, deadline_s=opts.detect_deadline_s, poll_interval_s=opts.poll_interval_s
        )
        if not obs.bad:
            log.note("detect", f"symptom not seen within {opts.detect_deadline_s:g}s: {obs.detail}")
            return
        times.detected_at = log.note(
            "detect", f"symptom seen: {obs.detail}", actor="drill:monitor", at=obs.at
        ).at
        if s.lift == Lift.OUTAGE:
            delay = max(0.0, opts.outage_s - (utc_now() - times.injected_at).total_seconds())
            self.lifter = Lifter(self.target, s.fault, delay).start()
        # 4. Respond ("Response: ...")
        alert = drill_alert(s, self.drill_id)
        times.alerted_at = log.note("alert", f"{alert.name}: {alert.summary} ({s.severity})").at
        if self.start is None:
            self.response = respond_via_intake(s, alert, opts, log)
        else:
            self.response = respond_direct(s, alert, opts, log, self.start)
        if s.lift == Lift.PEOPLE and self.response.error is None:
            self.target.lift(s.fault)
            times.lifted_at = log.note("lift", f"people's fix simulated: fault {s.fault_text} removed").at
        if self.lifter is not None:
            self.lifter.wait(timeout_s=opts.outage_s + opts.recover_deadline_s)
            if self.lifter.lifted_at is not None:
                times.lifted_at = self.lifter.lifted_at
                log.note("lift", f"the outage ended after {opts.outage_s:g}s", at=self.lifter.lifted_at)
            elif self.lifter.error:
                log.note("lift", f"could not end the outage: {self.lifter.error}")
        # 5. Verify recovery, independently (once only when the response failed)
        deadline = 0.0 if self.response.error else opts.recover_deadline_s
        obs = watch(
            s, until_bad=False, deadline_s=deadline, poll_interval_s=opts.poll_interval_s, recovery=True
        )
        if obs.bad:
            log.note("verify", f"not recovered: {obs.detail}", actor="drill:monitor", at=obs.at)
        else:
            times.recovered_at = log.note(
                "verify", f"recovered: {obs.detail}", actor="drill:monitor", at=obs.at
            ).at

    def stop(self) -> None:
        if self.lifter is not None:
            self.lifter.finish()


def run_drill(s: Scenario, opts: DrillOptions) -> DrillResult:
    """Run one drill of scenario `s` (see the module docstring). Returns the result; raises
    `DrillRefused` (after recording it) when the target may not be drilled."""
    settings = runtime.settings()
    log = DrillLog()
    ctx = FlowRunContext.get()
    run_id = str(ctx.flow_run.id) if ctx and ctx.flow_run else None
    result = DrillResult(
        drill_id=new_id(),
        scenario=s.key,
        target=opts.target,
        environment="unknown",
        via=opts.via,
        allow_production=opts.allow_production,
        status=DrillStatus.FAILED,
        flow_run_id=run_id,
        runbook=s.runbook if opts.via == "runbook" else "respond",
    )

    # 1. Target check: decided on what the target is marked as, before anything is sent to it.
    environment = target_environment(opts.target)
    result.environment = environment
    check = check_target(
        opts.target, environment, settings.environment, allow_production=opts.allow_production
    )
    if not check.allowed:
        result.status, result.reason = DrillStatus.REFUSED, check.reason
        log.note("refused", check.reason)
        result.timeline, result.finished_at = log.entries, utc_now()
        publish(result, s, opts, log)
        raise DrillRefused(check.reason)
    log.note("target", check.reason + (" (allow_production=True given)" if opts.allow_production else ""))
    _name, start = responder(s, opts.via)
    target = open_target(opts.target)

    exercise = Exercise(s, opts, target, log, result.drill_id, start)
    try:
        exercise.run()
    finally:
        # 6. Always remove the fault, whatever happened (BaseException included: a cancellation's SIGTERM).
        exercise.stop()
        try:
            target.clear()
            result.fault_cleared = True
            exercise.times.cleared_at = log.note("clear", f"fault {s.fault_text} cleared").at
        except Exception as exc:  # reported as a failed drill and an improvement; never hidden
            result.clear_error = f"{type(exc).__name__}: {exc}"
            log.note("clear", f"fault {s.fault_text} NOT cleared: {result.clear_error}")
    times, response = exercise.times, exercise.response
    result.reason = exercise.inject_error or ""

    # 7. Measure, judge, record, publish
    result.incident_id, result.runbook_outcome, result.runbook_error = (
        response.incident_id,
        response.outcome,
        response.error,
    )
    if response.incident_id is not None:
        measure(s, response.incident_id, times)
        _close_incident(response.incident_id, log)
    result.times = times
    result.steps = judge(s, times)
    ok = (
        all(step.passed for step in result.steps)
        and result.fault_cleared
        and response.error is None
        and exercise.inject_error is None
    )
    result.status = DrillStatus.PASSED if ok else DrillStatus.FAILED
    result.improvements = improvements(s, result)
    result.timeline, result.finished_at = log.entries, utc_now()
    publish(result, s, opts, log)
    return result


def _close_incident(incident_id: str, log: DrillLog) -> None:
    """A drill's incident ends with the drill: resolved by the drill if the response left it open."""
    store = runtime.store()
    incident = store.get_incident(incident_id, with_timeline=False)
    if incident.status != IncidentStatus.RESOLVED:
        store.set_status(
            incident_id, IncidentStatus.RESOLVED, utc_now(), ACTOR, "drill over: incident closed"
        )
        log.incident_id = None  # set_status wrote its own entry
        log.note("close", f"incident {incident_id} resolved by the drill")
        log.incident_id = incident_id


def clear_after_cancellation(flow: Any, flow_run: Any, state: Any) -> None:
    """Cancellation/crash hook: clear the drill target's faults once more (idempotent), if it may be
    drilled at all (a refused target is never contacted, not even to clean up)."""
    params = flow_run.parameters or {}
    name = str(params.get("target", "sandbox"))
    check = check_target(
        name,
        target_environment(name),
        runtime.settings().environment,
        allow_production=bool(params.get("allow_production", False)),
    )
    if check.allowed:
        open_target(name).clear()


# --- the flows --------------------------------------------------------------------------------------------

Seconds = Annotated[float, Field(gt=0, le=3600)]
_HOOKS: dict[str, Any] = {
    "on_cancellation": [clear_after_cancellation],
    "on_crashed": [clear_after_cancellation],
}


def _options(**kw: Any) -> DrillOptions:
    kw["runbook_parameters"] = dict(kw.get("runbook_parameters") or {})
    return DrillOptions(**kw)


@flow(
    name="drill-database-failure",
    description="Drill, Scenario 1: Database Failure (db-down).",
    **_HOOKS,
)
def drill_database_failure(
    target: str = "sandbox",
    allow_production: bool = False,
    via: Via = "runbook",
    poll_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0,
    detect_deadline_s: Seconds = 120.0,
    recover_deadline_s: Seconds = 600.0,
    runbook_parameters: dict[str, Any] | None = None,
    post_to_slack: bool = True,
) -> DrillResult:
    """Scenario 1: Database Failure. Simulate: the database goes away (PostgreSQL stopped); Response: the
    Database Connection Lost recovery procedure (restart the database, reset the pool, verify).

    Args:
        target: where to inject the fault: sandbox (default), or the environment the runbooks' settings name
        allow_production: drill a target marked production; refused without it (recorded when given)
        via: runbook (start database-lost directly), respond (start respond), intake (post the alert there)
        poll_interval_s: how often the drill's monitor looks at the service
        detect_deadline_s: the monitor gives up if the symptom has not shown by then
        recover_deadline_s: how long to wait for the response and the verified recovery
        runbook_parameters: parameters of the flow started (the runbook; respond with via=respond)
        post_to_slack: post the drill report to #incidents
    """
    opts = _options(**locals())
    return run_drill(scenario("database-failure"), opts)


@flow(
    name="drill-high-error-rate", description="Drill, Scenario 2: High Error Rate (a buggy deploy).", **_HOOKS
)
def drill_high_error_rate(
    target: str = "sandbox",
    allow_production: bool = False,
    via: Via = "runbook",
    poll_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0,
    detect_deadline_s: Seconds = 120.0,
    recover_deadline_s: Seconds = 600.0,
    runbook_parameters: dict[str, Any] | None = None,
    post_to_slack: bool = True,
) -> DrillResult:
    """Scenario 2: High Error Rate. Simulate: deploy buggy code; Response: identify and roll back.

    Args:
        target: where to inject the fault: sandbox (default), or the environment the runbooks' settings name
        allow_production: drill a target marked production; refused without it (recorded when given)
        via: runbook (start service-down directly), respond (start respond), intake (post the alert to intake)
        poll_interval_s: how often the drill's monitor looks at the service
        detect_deadline_s: the monitor gives up if the symptom has not shown by then
        recover_deadline_s: how long to wait for the response and the verified recovery
        runbook_parameters: parameters of the flow started (the runbook; respond with via=respond)
        post_to_slack: post the drill report to #incidents
    """
    opts = _options(**locals())
    return run_drill(scenario("high-error-rate"), opts)


@flow(
    name="drill-performance-degradation",
    description="Drill, Scenario 3: Performance Degradation (a slow query).",
    **_HOOKS,
)
def drill_performance_degradation(
    target: str = "sandbox",
    allow_production: bool = False,
    via: Via = "runbook",
    poll_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0,
    detect_deadline_s: Seconds = 120.0,
    recover_deadline_s: Seconds = 900.0,
    runbook_parameters: dict[str, Any] | None = None,
    post_to_slack: bool = True,
) -> DrillResult:
    """Scenario 3: Performance Degradation. Simulate: a slow database query; Response: troubleshoot, optimise.

    Args:
        target: where to inject the fault: sandbox (default), or the environment the runbooks' settings name
        allow_production: drill a target marked production; refused without it (recorded when given)
        via: runbook (start the diagnosis directly), respond (start respond), intake (post the alert there)
        poll_interval_s: how often the drill's monitor measures the latency
        detect_deadline_s: the monitor gives up if the latency has not risen by then
        recover_deadline_s: how long to wait for the diagnosis and the verified recovery (P2: 15 min)
        runbook_parameters: parameters of the flow started (the diagnosis; respond with via=respond)
        post_to_slack: post the drill report to #incidents
    """
    opts = _options(**locals())
    return run_drill(scenario("performance-degradation"), opts)


@flow(
    name="drill-external-api-failure",
    description="Drill, Scenario 4: External API Failure (Hume blocked).",
    **_HOOKS,
)
def drill_external_api_failure(
    target: str = "sandbox",
    allow_production: bool = False,
    via: Via = "runbook",
    outage_s: Seconds = 120.0,
    poll_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0,
    detect_deadline_s: Seconds = 120.0,
    recover_deadline_s: Seconds = 900.0,
    runbook_parameters: dict[str, Any] | None = None,
    post_to_slack: bool = True,
) -> DrillResult:
    """Scenario 4: External API Failure. Simulate: block Hume API calls; Response: fallback/maintenance mode.

    Args:
        target: where to inject the fault: sandbox (default), or the environment the runbooks' settings name
        allow_production: drill a target marked production; refused without it (recorded when given)
        via: runbook (start external-api-failure directly), respond (start respond), intake (post to intake)
        outage_s: Hume comes back this long after it was blocked
        poll_interval_s: how often the drill's monitor looks at Hume and the service
        detect_deadline_s: the monitor gives up if the symptom has not shown by then
        recover_deadline_s: how long to wait for the response and the verified recovery
        runbook_parameters: parameters of the flow started (the runbook; respond with via=respond)
        post_to_slack: post the drill report to #incidents
    """
    opts = _options(**locals())
    return run_drill(scenario("external-api-failure"), opts)


DRILLS: dict[str, Callable[..., DrillResult]] = {
    "database-failure": drill_database_failure,
    "high-error-rate": drill_high_error_rate,
    "performance-degradation": drill_performance_degradation,
    "external-api-failure": drill_external_api_failure,
}


@flow(name="drill-monthly", description="Running Incident Drill: this month's scenarios, then the history.")
def drill_monthly(
    plan: Literal["rotate", "quarterly", "all"] = "rotate",
    month: Annotated[int, Field(ge=1, le=12)] | None = None,
    target: str = "sandbox",
    allow_production: bool = False,
    via: Via = "runbook",
    post_to_slack: bool = True,
) -> list[DrillResult]:
    """Monthly incident simulations: rotate (one scenario a month), quarterly (all four each quarter), all.

    Args:
        plan: rotate (one scenario a month, 1 to 4 in turn), quarterly (all four in Jan/Apr/Jul/Oct), all
        month: the month to plan for (1-12); empty: the current month (UTC)
        target: where to inject the faults: sandbox (default), or the environment the settings name
        allow_production: drill a target marked production; refused without it (recorded when given)
        via: runbook (start each runbook directly), respond (start respond), intake (post alerts to intake)
        post_to_slack: post each drill report to #incidents
    """
    chosen = scenarios_for(plan, month or utc_now().month)
    logger = get_run_logger()
    logger.info("plan %s: %s", plan, ", ".join(s.label for s in chosen) or "no drill this month")
    results = [
        DRILLS[s.key](target=target, allow_production=allow_production, via=via, post_to_slack=post_to_slack)
        for s in chosen
    ]
    with open_history(runtime.settings().store.url) as history:
        publish_history(history.list(limit=200))
    return results
