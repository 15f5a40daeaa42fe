"""One drill, steps 1-7 of flows/drills.py's docstring: target check, inject, detect, respond, let the
cause go, verify, **always** clear, then measure, judge and publish.

Usage (inside a drill flow)::

    result = run_drill(scenario("high-error-rate"), DrillOptions(via="respond"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flows.drilling.monitor import DrillLog, Lifter, watch
from flows.drilling.options import ACTOR, DrillOptions, DrillRefused
from flows.drilling.report import publish
from flows.drilling.response import Response, drill_alert, respond_direct, respond_via_intake, responder
from flows.drilling.services import drill_service
from flows.flow_run import flow_run_id
from runbook.drills import (
    DrillResult,
    DrillStatus,
    DrillTimes,
    Lift,
    Scenario,
    check_target,
    improvements,
    judge,
)
from runbook.models import IncidentStatus, new_id, utc_now
from tasks import runtime
from tasks.drill_targets import FaultFailed, FaultTarget, open_target, target_environment

__all__ = ["Exercise", "clear_after_cancellation", "measure", "run_drill"]


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
    fault_args: dict[str, Any] = field(default_factory=dict)
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
            self.target.inject(s.fault, self.fault_args)
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
    log = DrillLog()
    run_id = flow_run_id()
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

    # 1. Target check: decided on what the target is marked as, before anything is sent to it; and the
    # service drilled, bound for the rest of this flow run (its monitor, alert and runbook target).
    environment = target_environment(opts.target)
    result.environment = environment
    check = check_target(
        opts.target, environment, runtime.settings().environment, allow_production=opts.allow_production
    )
    reason = check.reason
    service = None
    if check.allowed:
        try:
            service = drill_service(opts.service)
        except DrillRefused as exc:
            reason = str(exc)
    elif opts.service is not None and runtime.catalogue().find(opts.service) is None:
        reason += f"; service {opts.service!r} is not in the catalogue"
    if service is None:
        result.status, result.reason = DrillStatus.REFUSED, reason
        log.note("refused", reason)
        result.timeline, result.finished_at = log.entries, utc_now()
        publish(result, s, opts, log)
        raise DrillRefused(reason)
    runtime.bind(service.name)
    fault_args = dict(s.fault_args)
    if service.name != runtime.catalogue().names[0]:  # the world's faults default to its first service
        fault_args["service"] = service.name
    log.note(
        "service", f"drilling {service.name} ({service.kubernetes.namespace}/{service.kubernetes.deployment})"
    )
    log.note("target", check.reason + (" (allow_production=True given)" if opts.allow_production else ""))
    _name, start = responder(s, opts.via)
    target = open_target(opts.target)

    exercise = Exercise(s, opts, target, log, result.drill_id, start, fault_args)
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
