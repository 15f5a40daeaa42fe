"""runbook/drills.py: the scenarios as the guide writes them, the production rule, the plans, the judging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runbook.drills import (
    SCENARIOS,
    DrillResult,
    DrillStatus,
    DrillTimes,
    Lift,
    Step,
    check_target,
    human_s,
    improvements,
    judge,
    scenario,
    scenarios_for,
    targets_for,
)
from runbook.models import Signals
from runbook.severity import Severity, classify

T0 = datetime(2026, 3, 3, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_four_scenarios_of_the_guide_in_order() -> None:
    assert [(s.number, s.title, s.simulate, s.response) for s in SCENARIOS] == [
        (1, "Database Failure", "kubectl delete statefulset postgres", "Team exercises recovery procedure"),
        (2, "High Error Rate", "Deploy buggy code", "Team identifies and rolls back"),
        (3, "Performance Degradation", "Slow database query", "Team troubleshoots and optimizes"),
        (4, "External API Failure", "Block Hume API calls", "Team enables fallback/maintenance mode"),
    ]
    assert [s.fault_text for s in SCENARIOS] == [
        "db-down",
        "bad-deploy",
        "slow-query",
        "api-down api=hume",
    ]


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.key)
def test_each_scenario_alert_classifies_to_its_severity(s) -> None:
    assert classify(Signals(**s.signals)).severity == s.severity


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown 'db'.*database-failure, high-error-rate"):
        scenario("db")


@pytest.mark.parametrize(
    ("target_env", "runbooks_env", "allow", "allowed", "reason"),
    [
        ("sandbox", "sandbox", False, True, "sandbox target"),
        ("sandbox", "development", False, True, "sandbox target"),
        ("staging", "staging", False, True, "staging target"),
        (
            "production",
            "production",
            False,
            False,
            "marked production: a drill there needs allow_production=True",
        ),
        ("sandbox", "production", False, False, "settings say production"),
        ("production", "production", True, True, "allowed explicitly"),
        ("production", "sandbox", True, False, "the runbooks act on sandbox"),
        ("sandbox", "staging", False, False, "the runbooks act on staging"),
        ("staging", "development", False, False, "the runbooks act on development"),
    ],
)
def test_target_rule(target_env: str, runbooks_env: str, allow: bool, allowed: bool, reason: str) -> None:
    check = check_target("t", target_env, runbooks_env, allow_production=allow)
    assert check.allowed is allowed
    assert reason in check.reason
    assert check.production is ("production" in (target_env, runbooks_env))


def test_target_rule_refuses_an_unknown_environment_by_name() -> None:
    with pytest.raises(ValueError, match=r"target environment: must be one of .* \(got 'prod'\)"):
        check_target("t", "prod", "sandbox", allow_production=False)


@pytest.mark.parametrize(
    ("plan", "month", "expected"),
    [
        ("rotate", 1, [1]),
        ("rotate", 2, [2]),
        ("rotate", 4, [4]),
        ("rotate", 5, [1]),
        ("rotate", 12, [4]),
        ("quarterly", 1, [1, 2, 3, 4]),
        ("quarterly", 2, []),
        ("quarterly", 10, [1, 2, 3, 4]),
        ("all", 7, [1, 2, 3, 4]),
    ],
)
def test_monthly_plans(plan: str, month: int, expected: list[int]) -> None:
    assert [s.number for s in scenarios_for(plan, month)] == expected


def test_rotation_covers_every_scenario_in_four_months() -> None:
    assert {scenarios_for("rotate", m)[0].key for m in range(1, 5)} == {s.key for s in SCENARIOS}


@pytest.mark.parametrize(
    ("plan", "month", "message"), [("weekly", 1, "plan: must be one of"), ("all", 13, "month")]
)
def test_bad_plan_or_month(plan: str, month: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scenarios_for(plan, month)


def test_targets_follow_the_guide() -> None:
    p1 = targets_for(Severity.P1)
    assert (p1.acknowledge, p1.mitigate, p1.recover) == (
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=5),
    )
    assert p1.of(Step.DETECT) is None
    assert targets_for(Severity.P2).mitigate == timedelta(minutes=15)


def test_judge_measures_each_step_from_where_the_guide_starts_the_clock() -> None:
    s = scenario("high-error-rate")  # Lift.RUNBOOK: recovery timed from the alert
    times = DrillTimes(
        injected_at=at(0),
        detected_at=at(4),
        alerted_at=at(5),
        acknowledged_at=at(35),
        mitigated_at=at(125),
        recovered_at=at(305.5),
    )
    steps = {r.step: r for r in judge(s, times)}
    assert (
        steps[Step.DETECT].elapsed_s == 4
        and steps[Step.DETECT].passed
        and steps[Step.DETECT].target_s is None
    )
    assert steps[Step.ACKNOWLEDGE].elapsed_s == 30 and steps[Step.ACKNOWLEDGE].passed
    assert steps[Step.MITIGATE].elapsed_s == 120 and steps[Step.MITIGATE].passed
    assert steps[Step.RECOVER].elapsed_s == 300.5 and not steps[Step.RECOVER].passed  # 5 min 0.5 s > 5 min


def test_judge_times_recovery_from_the_lift_when_the_cause_ends_by_itself() -> None:
    s = scenario("external-api-failure")
    assert s.lift == Lift.OUTAGE
    times = DrillTimes(
        injected_at=at(0),
        detected_at=at(2),
        alerted_at=at(2),
        acknowledged_at=at(3),
        mitigated_at=at(10),
        lifted_at=at(600),
        recovered_at=at(640),
    )
    recover = {r.step: r for r in judge(s, times)}[Step.RECOVER]
    assert (recover.origin, recover.elapsed_s, recover.passed) == ("cause lifted", 40, True)


def test_a_step_that_never_happened_fails() -> None:
    steps = {
        r.step: r
        for r in judge(scenario("database-failure"), DrillTimes(injected_at=at(0), detected_at=at(1)))
    }
    assert not steps[Step.ACKNOWLEDGE].passed and steps[Step.ACKNOWLEDGE].note == "did not happen"
    assert not steps[Step.RECOVER].passed


def _result(**kw) -> DrillResult:
    base = dict(
        times=DrillTimes(injected_at=at(0)),
        drill_id="d1",
        scenario="high-error-rate",
        target="sandbox",
        environment="sandbox",
        via="runbook",
        status=DrillStatus.FAILED,
        fault_cleared=True,
    )
    return DrillResult(**{**base, **kw})


def test_improvements_name_the_runbook_failure_and_a_dirty_target() -> None:
    s = scenario("high-error-rate")
    lines = improvements(
        s, _result(runbook_error="RuntimeError: boom", fault_cleared=False, clear_error="timeout")
    )
    assert "service-down failed (RuntimeError: boom)" in lines[0]
    assert "could not be cleared (timeout)" in lines[1]


def test_improvements_for_a_slow_step_quote_measured_and_target() -> None:
    s = scenario("high-error-rate")
    times = DrillTimes(
        injected_at=at(0),
        detected_at=at(1),
        acknowledged_at=at(2),
        mitigated_at=at(361),
        recovered_at=at(362),
    )
    result = _result(steps=judge(s, times))
    assert any("Mitigation took 6.0 min (target 5.0 min)" in line for line in improvements(s, result))


def test_a_clean_drill_says_so() -> None:
    s = scenario("high-error-rate")
    times = DrillTimes(
        injected_at=at(0), detected_at=at(1), acknowledged_at=at(2), mitigated_at=at(3), recovered_at=at(4)
    )
    assert improvements(s, _result(steps=judge(s, times), status=DrillStatus.PASSED))[0].startswith(
        "Every step"
    )


def test_mttr_is_fault_to_verified_recovery() -> None:
    assert _result(times=DrillTimes(injected_at=at(0), recovered_at=at(90))).mttr_s == 90
    assert _result().mttr_s is None


def test_improvements_when_nothing_was_injected() -> None:
    s = scenario("high-error-rate")
    result = _result(times=DrillTimes(), reason="fault bad-deploy could not be injected: HTTP 409")
    assert improvements(s, result) == [
        "Nothing was exercised: fault bad-deploy could not be injected: HTTP 409; fix the target first."
    ]
    assert [human_s(x) for x in (None, 4.25, 90, 7200)] == ["-", "4.2 s", "1.5 min", "2.0 h"]
