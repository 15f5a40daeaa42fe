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
times. No Prefect import: flows/drills.py runs the drills, runbook/postmortem.py renders their report.
One module past 400 lines because it is one thing: the guide's drill section as data (scenarios,
targets, the production rule, the judging of one drill), each part read by the others.

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

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from runbook.models import TimelineEntry, utc_now
from runbook.severity import LEVELS, Severity

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


def _human(t: timedelta) -> str:
    return human_s(t.total_seconds())


def human_s(seconds: float | None) -> str:
    """`42.0 s`, `3.5 min`, `1.2 h`; `-` for None (a step that never happened)."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Step(StrEnum):
    """What a drill measures, in the order it happens."""

    DETECT = "detect"
    ACKNOWLEDGE = "acknowledge"
    MITIGATE = "mitigate"
    RECOVER = "recover"


class Lift(StrEnum):
    """What removes the injected cause during a drill."""

    RUNBOOK = "runbook"  # the response itself (rollback, pool reset): the fault is cleared at the end only
    OUTAGE = "outage"  # it ends by itself after `outage_s` (a database restarted, a third party back)
    PEOPLE = "people"  # people's lasting fix (optimise the query), simulated once the runbook is done


class Symptom(StrEnum):
    """What the drill's monitor watches, as production monitoring would."""

    SERVICE = "service"  # /health or /api/health not 200
    API = "api"  # an external API's health check fails (recovered: up again and its feature back on)
    LATENCY = "latency"  # the service's p95 latency above the scenario's threshold


@dataclass(frozen=True)
class Scenario:
    """One of the guide's drill scenarios, and how the sandbox plays it."""

    key: str
    number: int
    title: str
    simulate: str  # the guide's "Simulate:" line
    response: str  # the guide's "Response:" line
    fault: str  # the sandbox fault (sandbox/faults.py)
    fault_args: Mapping[str, Any]
    runbook: str  # what should respond (flows/catalogue.py name)
    severity: Severity
    alert_name: str
    summary: str
    signals: Mapping[str, Any]  # runbook.models.Signals fields the alert carries
    symptom: Symptom
    symptom_arg: str | None  # API name (Symptom.API) or the endpoint path timed (Symptom.LATENCY)
    lift: Lift
    mitigation: str  # what counts as mitigated, in words
    mitigating_actions: frozenset[str]  # action names (store) whose success is the mitigation
    expected_conclusion: str | None = None  # a diagnosis: the conclusion that counts as mitigated
    runbook_parameters: Mapping[str, Any] = field(default_factory=dict)
    latency_threshold_ms: float = 3000.0  # Symptom.LATENCY: "Response time P95 > 3s" (P2)

    @property
    def label(self) -> str:
        return f"Scenario {self.number}: {self.title}"

    @property
    def fault_text(self) -> str:
        return " ".join([self.fault, *(f"{k}={v}" for k, v in self.fault_args.items())])


# Guide: Running Incident Drill, scenarios 1-4 (the "Simulate" and "Response" lines verbatim).
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        key="database-failure",
        number=1,
        title="Database Failure",
        simulate="kubectl delete statefulset postgres",
        response="Team exercises recovery procedure",
        fault="db-down",
        fault_args={},
        runbook="database-lost",
        severity=Severity.P1,
        alert_name="DatabaseConnectionLost",
        summary="emotionscare cannot reach its database (drill)",
        signals={"database_reachable": False, "server_errors_5xx": True},
        symptom=Symptom.SERVICE,
        symptom_arg=None,
        lift=Lift.RUNBOOK,
        mitigation="database restarted, connection pool reset or pool size raised",
        mitigating_actions=frozenset({"reset-db-pool", "set-pool-size", "restart-database"}),
    ),
    Scenario(
        key="high-error-rate",
        number=2,
        title="High Error Rate",
        simulate="Deploy buggy code",
        response="Team identifies and rolls back",
        fault="bad-deploy",
        fault_args={},
        runbook="service-down",
        severity=Severity.P1,
        alert_name="ServiceDown",
        summary="emotionscare answers 500 after a deploy (drill)",
        signals={"server_errors_5xx": True},
        symptom=Symptom.SERVICE,
        symptom_arg=None,
        lift=Lift.RUNBOOK,
        mitigation="the buggy deploy rolled back",
        mitigating_actions=frozenset({"rollback"}),
    ),
    Scenario(
        key="performance-degradation",
        number=3,
        title="Performance Degradation",
        simulate="Slow database query",
        response="Team troubleshoots and optimizes",
        fault="slow-query",
        fault_args={},
        runbook="performance-degradation",
        severity=Severity.P2,
        alert_name="HighLatency",
        summary="emotionscare p95 above 3 s on the journal (drill)",
        signals={"p95_latency_ms": 3500.0},
        symptom=Symptom.LATENCY,
        symptom_arg="/api/journal",
        lift=Lift.PEOPLE,
        mitigation="the slow query diagnosed (the optimisation is people's work)",
        mitigating_actions=frozenset(),
        expected_conclusion="database_query",
    ),
    Scenario(
        key="external-api-failure",
        number=4,
        title="External API Failure",
        simulate="Block Hume API calls",
        response="Team enables fallback/maintenance mode",
        fault="api-down",
        fault_args={"api": "hume"},
        runbook="external-api-failure",
        severity=Severity.P2,
        alert_name="ExternalApiDown",
        summary="Hume API unreachable: music generation failing (drill)",
        signals={"key_integration_down": True},
        symptom=Symptom.API,
        symptom_arg="hume",
        lift=Lift.OUTAGE,
        mitigation="the affected feature turned off (maintenance mode) and users told",
        mitigating_actions=frozenset({"disable-feature"}),
        runbook_parameters={"apis": ["hume"]},
    ),
)

_BY_KEY = {s.key: s for s in SCENARIOS}


def scenario(key: str) -> Scenario:
    """The scenario called `key` (`ValueError` naming the known ones otherwise)."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise ValueError(f"scenario: unknown {key!r}; known: {', '.join(_BY_KEY)}") from None


# --- the monthly plan -------------------------------------------------------------------------------------

Plan = Literal["rotate", "quarterly", "all"]
PLANS: tuple[str, ...] = ("rotate", "quarterly", "all")


def scenarios_for(plan: str, month: int) -> tuple[Scenario, ...]:
    """The scenarios a monthly run of `plan` drills in `month` (1-12).

    `rotate`: one a month in the guide's order (January 1, February 2, ..., May 1 again);
    `quarterly`: all four in January, April, July and October, none otherwise; `all`: all four.
    """
    if not 1 <= month <= 12:
        raise ValueError(f"month: must be 1-12 (got {month})")
    if plan == "rotate":
        return (SCENARIOS[(month - 1) % len(SCENARIOS)],)
    if plan == "quarterly":
        return SCENARIOS if month % 3 == 1 else ()
    if plan == "all":
        return SCENARIOS
    raise ValueError(f"plan: must be one of {', '.join(PLANS)} (got {plan!r})")


# --- targets ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """How fast each step must be, and the guide's words for it. None: the guide sets no target."""

    acknowledge: timedelta
    mitigate: timedelta
    recover: timedelta
    source: str

    def of(self, step: Step) -> timedelta | None:
        return {
            Step.DETECT: None,
            Step.ACKNOWLEDGE: self.acknowledge,
            Step.MITIGATE: self.mitigate,
            Step.RECOVER: self.recover,
        }[step]


def _level_targets(severity: Severity) -> Targets:
    t = LEVELS[severity].response_time
    return Targets(t, t, t, f"{LEVELS[severity].label}: response time < {_human(t)}")


TARGETS: dict[Severity, Targets] = {
    Severity.P1: Targets(
        acknowledge=timedelta(minutes=1),
        mitigate=timedelta(minutes=5),
        recover=timedelta(minutes=5),
        source="P1 timeline: acknowledge in minute 0-1; act and verify health by minute 5 (response < 5 min)",
    ),
    Severity.P2: _level_targets(Severity.P2),
    Severity.P3: _level_targets(Severity.P3),
    Severity.P4: _level_targets(Severity.P4),
}


def targets_for(severity: Severity) -> Targets:
    return TARGETS[Severity(severity)]


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
    """Everything one drill did and measured; rendered by runbook.postmortem.render_drill_report."""

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
