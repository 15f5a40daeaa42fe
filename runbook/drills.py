"""The guide's "Running Incident Drill" as data: four scenarios, the targets a drill is judged against,
the rule that keeps drills off production, and the figures of one drill.

Usage::

    from runbook.drills import SCENARIOS, check_target, judge, scenario, scenarios_for

    s = scenario("high-error-rate")        # Scenario 2: bad-deploy → service-down → rollback
    check_target("sandbox", "sandbox", "sandbox", allow_production=False).allowed        # True
    check_target("prod", "production", "production", allow_production=False).reason
    # "target 'prod' is marked production: a drill there needs allow_production=True, given explicitly"
    scenarios_for("rotate", month=2)       # (Scenario 2,): one scenario a month, in the guide's order
    steps = judge(s, times)                # pass/fail per step against the guide's targets

Guide: Running Incident Drill ("Monthly, run incident simulations"; four scenarios, each a "Simulate"
and a "Response"), judged against P1 › Timeline: First 5 Minutes and the Severity Levels' response
times. No Prefect import: flows/drills.py runs the drills, runbook/drill_report.py renders their report.
The scenarios, the monthly plans and the targets are `runbook.drill_scenarios` (re-exported here);
this module keeps where a drill may run and the judging of one drill.

Decisions where the guide leaves room (docs/drills.md says the same):

- Scenario 1's "kubectl delete statefulset postgres" is the sandbox fault `db-down`: PostgreSQL
  stops, `SELECT 1` is refused, `/api/health` answers 500. The guide's recovery procedure (Database
  Connection Lost) runs in full: option 3 restarts the hosted database through the provider API (the
  sandbox has a Supabase-style one), the pool left dead by the restart is reset (option 1), verified.
- Scenario 3 ("Slow database query … Team troubleshoots and optimizes") is a P2 performance
  degradation (P95 > 3 s): the automation diagnoses; the optimisation itself is people's work, which
  the drill simulates by lifting the fault once the diagnosis is in.
- Scenario 4 ("Block Hume API calls … enables fallback/maintenance mode"): mitigation is the feature
  turned off; the outage ends after `outage_s` (the third party comes back), and recovery is the
  feature turned back on with the API answering.
- Scenario 4 is P2: the alert mapping says "Key API integration down" is P2 (and "Music feature
  completely broken" is a P2 example), although the guide lists the procedure under P1's actions.
  Its targets are therefore P2's (15 minutes); intake would classify its alert the same way.
- Targets. P1: acknowledge within 1 minute of the alert ("Minute 0-1: Acknowledge"); mitigate and
  verify recovery within 5 minutes ("Minute 3-5: Action … Verify service health"; response time
  < 5 minutes). P2–P4: the level's response time for every step. Detection has no target in the
  guide: it is measured and reported, and fails only when the monitor never saw the fault. Recovery
  is timed from the alert when the response removes the cause, and from the moment the cause went
  away when it ends by itself or by people's fix (an outage's length is not the responders' time).
- Acknowledged is the incident's `acknowledged_at` when a person or `respond` set it; on the direct
  runbook path nobody acknowledges, and the time the runbook took the incident (its first timeline
  entry) stands in for it, named as such in the report.
- Production: a target marked production, or runbooks whose settings say production, is refused
  unless `allow_production=True` is given explicitly; the permission is recorded in the report and
  the history. A target whose environment differs from the runbooks' (faults in the sandbox while the
  runbooks act on staging) is refused too: the drill would exercise nothing, or the wrong thing.
- Plans for the monthly schedule: `rotate` (one scenario a month, 1 → 4 in the guide's order, so each
  comes round every four months), `quarterly` (all four in the first month of each quarter, nothing in
  the other months), `all` (all four every month).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, Field

from runbook.drill_scenarios import (
    PLANS,
    SCENARIOS,
    TARGETS,
    Lift,
    Plan,
    Scenario,
    Step,
    Symptom,
    Targets,
    human_s,
    scenario,
    scenarios_for,
    targets_for,
)
from runbook.models import TimelineEntry, utc_now

__all__ = [
    "PLANS",
    "SCENARIOS",
    "TARGETS",
    "DrillResult",
    "DrillStatus",
    "DrillTimes",
    "Lift",
    "Plan",
    "Scenario",
    "Step",
    "StepResult",
    "Symptom",
    "TargetCheck",
    "Targets",
    "check_target",
    "human_s",
    "improvements",
    "judge",
    "scenario",
    "scenarios_for",
    "targets_for",
]


# --- where a drill may run --------------------------------------------------------------------------------

_SAME_PLACE = {
    "sandbox": "sandbox",
    "development": "sandbox",
    "staging": "staging",
    "production": "production",
}


@dataclass(frozen=True)
class TargetCheck:
    """The answer of `check_target`: allowed or not, why, and whether production is involved."""

    allowed: bool
    reason: str
    production: bool


def check_target(
    target: str, target_environment: str, runbooks_environment: str, *, allow_production: bool
) -> TargetCheck:
    """May a drill inject faults into `target`? Decided before anything touches it.

    `target_environment` is what the target is marked as (sandbox, staging, production);
    `runbooks_environment` is `settings.environment`, where the runbooks will act. Production (either
    one) needs `allow_production=True`; the two must be the same place (development counts as the
    sandbox: a laptop pointed at `python -m sandbox up`).
    """
    for name, env in (("target", target_environment), ("runbooks", runbooks_environment)):
        if env not in _SAME_PLACE:
            raise ValueError(f"{name} environment: must be one of {', '.join(_SAME_PLACE)} (got {env!r})")
    production = "production" in (target_environment, runbooks_environment)
    if production and not allow_production:
        where = (
            f"target {target!r} is marked production"
            if target_environment == "production"
            else "the runbooks' settings say production (RUNBOOK_ENVIRONMENT)"
        )
        return TargetCheck(
            False, f"{where}: a drill there needs allow_production=True, given explicitly", True
        )
    if _SAME_PLACE[target_environment] != _SAME_PLACE[runbooks_environment]:
        return TargetCheck(
            False,
            f"target {target!r} is {target_environment} but the runbooks act on {runbooks_environment}: "
            "the drill would not exercise the response it injects for",
            production,
        )
    if production:
        return TargetCheck(
            True, f"production drill on {target!r}: allowed explicitly (allow_production)", True
        )
    return TargetCheck(True, f"{target_environment} target {target!r}", False)


# --- one drill's figures ----------------------------------------------------------------------------------


class DrillStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    REFUSED = "refused"


class DrillTimes(BaseModel):
    """The moments a drill observed. Times are aware UTC; None: it never happened."""

    injected_at: AwareDatetime | None = None
    detected_at: AwareDatetime | None = None
    alerted_at: AwareDatetime | None = None
    acknowledged_at: AwareDatetime | None = None
    acknowledged_by: str | None = None
    mitigated_at: AwareDatetime | None = None
    mitigated_by: str | None = None
    lifted_at: AwareDatetime | None = Field(None, description="when the cause went away (Lift.OUTAGE/PEOPLE)")
    recovered_at: AwareDatetime | None = None
    cleared_at: AwareDatetime | None = None


class StepResult(BaseModel):
    step: Step
    at: AwareDatetime | None
    elapsed_s: float | None = Field(None, description="seconds from `origin` to `at`")
    origin: str = Field(description='"fault injected", "alert", "cause lifted"')
    target_s: float | None
    passed: bool
    note: str = ""


class DrillResult(BaseModel):
    """Everything one drill did and measured; rendered by runbook.drill_report.render_drill_report."""

    drill_id: str
    scenario: str
    target: str
    environment: str
    via: str = Field(description='"runbook" (direct subflow), "respond" (subflow) or "intake" (alert POST)')
    allow_production: bool = False
    status: DrillStatus
    reason: str = ""
    started_at: AwareDatetime = Field(default_factory=utc_now)
    finished_at: AwareDatetime | None = None
    times: DrillTimes = Field(default_factory=DrillTimes)
    steps: list[StepResult] = Field(default_factory=list)
    incident_id: str | None = None
    flow_run_id: str | None = None
    runbook: str | None = None
    runbook_outcome: str | None = None
    runbook_error: str | None = None
    fault_cleared: bool = False
    clear_error: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    improvements: list[str] = Field(default_factory=list)

    @property
    def mttr_s(self) -> float | None:
        """Fault injected → verified recovery, in seconds (the outage as users lived it)."""
        t = self.times
        if t.injected_at is None or t.recovered_at is None:
            return None
        return (t.recovered_at - t.injected_at).total_seconds()

    def step(self, step: Step) -> StepResult | None:
        return next((s for s in self.steps if s.step == step), None)


def _since(at: datetime | None, origin: datetime | None) -> float | None:
    if at is None or origin is None:
        return None
    return round((at - origin).total_seconds(), 3)


def judge(s: Scenario, times: DrillTimes) -> list[StepResult]:
    """Each step against the scenario's targets: measured from where the guide's clock starts.

    Detection from the fault; acknowledgement and mitigation from the alert; recovery from the alert
    when the response removes the cause (`Lift.RUNBOOK`), else from the moment the cause went away.
    A step that never happened fails; a step without a target passes when it happened.
    """
    targets = targets_for(s.severity)
    alert = times.alerted_at or times.detected_at
    recover_origin, recover_label = (
        (alert, "alert") if s.lift == Lift.RUNBOOK else (times.lifted_at, "cause lifted")
    )
    plan: list[tuple[Step, datetime | None, datetime | None, str, str]] = [
        (Step.DETECT, times.detected_at, times.injected_at, "fault injected", "the monitor saw the symptom"),
        (Step.ACKNOWLEDGE, times.acknowledged_at, alert, "alert", times.acknowledged_by or ""),
        (Step.MITIGATE, times.mitigated_at, alert, "alert", times.mitigated_by or s.mitigation),
        (Step.RECOVER, times.recovered_at, recover_origin, recover_label, "health verified by the drill"),
    ]
    results = []
    for step, at, origin, label, note in plan:
        target = targets.of(step)
        elapsed = _since(at, origin)
        target_s = target.total_seconds() if target is not None else None
        if at is None:
            passed, note = False, "did not happen"
        elif elapsed is None:
            passed, note = False, f"{note}; its starting point was not observed".lstrip("; ")
        else:
            passed = target_s is None or elapsed <= target_s
        results.append(
            StepResult(
                step=step, at=at, elapsed_s=elapsed, origin=label, target_s=target_s, passed=passed, note=note
            )
        )
    return results


# Guide: Post-Incident › Prevention & Monitoring, applied to what a drill finds.
_ADVICE = {
    Step.DETECT: "Detection: no target in the guide, but {elapsed} from fault to symptom. New alert rule or "
    "a shorter evaluation interval (Prevention: new alert rule, to catch earlier).",
    Step.ACKNOWLEDGE: "Acknowledgement took {elapsed} (target {target}): check the paging path and the "
    "on-call rota (#alerts-critical, PagerDuty).",
    Step.MITIGATE: "Mitigation took {elapsed} (target {target}): shorten the runbook's waits or make its "
    "first option the one that works here (runbook update).",
    Step.RECOVER: "Verified recovery took {elapsed} (target {target}): look at rollout and settle times, "
    "and at what the verification waits for.",
}


def improvements(s: Scenario, result: DrillResult) -> list[str]:
    """What to improve, from the steps that failed and what went wrong around them."""
    out: list[str] = []
    if result.times.injected_at is None:
        out.append(
            f"Nothing was exercised: {result.reason or 'the fault was not injected'}; fix the target first."
        )
        return out
    if result.runbook_error:
        out.append(
            f"The runbook {result.runbook or s.runbook} failed ({result.runbook_error}): fix it and add "
            "a test case reproducing this drill (Prevention: test case)."
        )
    elif result.runbook_outcome in ("escalated", "failed") and s.lift != Lift.PEOPLE:
        out.append(
            f"The runbook ended {result.runbook_outcome}: the automation could not handle "
            f"{s.label.lower()}; document the manual step that did (runbook update)."
        )
    if not result.fault_cleared:
        out.append(
            f"The fault {s.fault_text} could not be cleared ({result.clear_error or 'unknown'}): "
            "clean the target by hand before the next drill."
        )
    for step in result.steps:
        if step.passed:
            continue
        if step.at is None:
            out.append(f"{step.step.value.capitalize()} never happened within the drill's deadline.")
            continue
        elapsed = human_s(step.elapsed_s)
        target = human_s(step.target_s)
        out.append(_ADVICE[step.step].format(elapsed=elapsed, target=target))
    if not out:
        out.append(
            "Every step within its target: keep the runbook as it is; next time, try a harder variant."
        )
    return out
