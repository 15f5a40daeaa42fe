"""The guide's drill scenarios as data: the four scenarios (what each simulates and the response
expected), the monthly plans that pick them, and the targets a drill's steps are judged against
(P1 › Timeline: First 5 Minutes, the Severity Levels' response times). `runbook.drills` re-exports
every name here and holds the rest of the drill section (where a drill may run, one drill's figures);
its docstring gives the decisions taken where the guide leaves room. Pure: no Prefect, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from runbook.severity import LEVELS, Severity

__all__ = [
    "PLANS",
    "SCENARIOS",
    "TARGETS",
    "Lift",
    "Plan",
    "Scenario",
    "Step",
    "Symptom",
    "Targets",
    "human_s",
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
