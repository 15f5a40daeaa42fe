"""Policy: the decision matrix, the recent-deploy window, deadlines and the escalation chains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runbook.models import Incident, IncidentStatus
from runbook.policy import (
    FAILURE_RULES,
    Contact,
    FailureKind,
    Observed,
    Triage,
    ack_deadline,
    classify_failure,
    contact_address,
    deployed_recently,
    escalation_chain,
    escalation_due,
    estimate_fix,
    next_escalation,
    p2_diagnosis,
    triage,
)
from runbook.settings import SlackSettings
from runbook.severity import Severity

T0 = datetime(2025, 11, 14, 14, 8, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("estimate", "cause_known", "action", "rule"),
    [
        (timedelta(minutes=4, seconds=59), True, Triage.ATTEMPT_FIX, "fix_lt_limit"),
        (timedelta(minutes=1), True, Triage.ATTEMPT_FIX, "fix_lt_limit"),
        (timedelta(minutes=5), True, Triage.ROLLBACK, "fix_ge_limit"),  # exactly 5: roll back
        (timedelta(minutes=5, seconds=1), True, Triage.ROLLBACK, "fix_ge_limit"),
        (timedelta(minutes=30), True, Triage.ROLLBACK, "fix_ge_limit"),
        (None, True, Triage.ROLLBACK, "unknown_cause"),
        (timedelta(minutes=1), False, Triage.ROLLBACK, "unknown_cause"),
    ],
)
def test_decision_matrix(estimate: timedelta | None, cause_known: bool, action: Triage, rule: str) -> None:
    d = triage(estimate, cause_known=cause_known)
    assert (d.action, d.rule) == (action, rule)


def test_decision_matrix_reason_and_limit() -> None:
    assert triage(timedelta(minutes=3)).reason == "Fix time 3 min < 5 min → Attempt fix"
    assert triage(None).reason == "Unknown cause → ROLLBACK"
    assert triage(timedelta(minutes=7), limit=timedelta(minutes=10)).action is Triage.ATTEMPT_FIX


@pytest.mark.parametrize(
    ("age", "recent"),
    [
        (timedelta(0), True),
        (timedelta(minutes=14, seconds=59), True),
        (timedelta(minutes=15), True),  # inclusive
        (timedelta(minutes=15, seconds=1), False),
        (timedelta(hours=3), False),
        (-MIN, True),  # a deploy "in the future": clock skew, treated as recent
    ],
)
def test_recent_deploy_window(age: timedelta, recent: bool) -> None:
    assert deployed_recently(T0 - age, T0) is recent


def test_recent_deploy_window_is_a_parameter_and_none_is_not_recent() -> None:
    assert deployed_recently(T0 - 20 * MIN, T0, window=30 * MIN) is True
    assert deployed_recently(None, T0) is False


def _incident(severity: Severity, **kw: object) -> Incident:
    return Incident(dedupe_key="k", title="t", severity=severity, severity_rule="manual", started_at=T0, **kw)


@pytest.mark.parametrize(
    ("severity", "deadline"),
    [(Severity.P1, 5 * MIN), (Severity.P2, 15 * MIN), (Severity.P3, 60 * MIN), (Severity.P4, 24 * 60 * MIN)],
)
def test_ack_deadline_is_the_response_time(severity: Severity, deadline: timedelta) -> None:
    assert ack_deadline(_incident(severity)) == T0 + deadline


def _due(incident: Incident, at: timedelta) -> list[tuple[Contact, bool]]:
    return [(s.contact, s.page) for s in escalation_due(incident, T0 + at)]


def test_p1_chain_unacknowledged() -> None:
    inc = _incident(Severity.P1)
    assert _due(inc, timedelta(0)) == [(Contact.ONCALL, True)]
    assert _due(inc, 5 * MIN - timedelta(seconds=1)) == [(Contact.ONCALL, True)]
    assert _due(inc, 5 * MIN) == [(Contact.ONCALL, True), (Contact.LEAD, True)]
    assert _due(inc, 10 * MIN) == [(Contact.ONCALL, True), (Contact.LEAD, True), (Contact.DEVOPS, True)]


def test_p1_acknowledged_in_time_does_not_escalate() -> None:
    inc = _incident(Severity.P1, status=IncidentStatus.ACKNOWLEDGED, acknowledged_at=T0 + 3 * MIN)
    assert _due(inc, 60 * MIN) == [(Contact.ONCALL, True)]
    assert next_escalation(inc, T0 + MIN) is None


def test_p2_chain() -> None:
    inc = _incident(Severity.P2)
    assert _due(inc, 14 * MIN) == [(Contact.ONCALL, False)]
    assert _due(inc, 15 * MIN) == [(Contact.ONCALL, False), (Contact.LEAD, False)]
    assert _due(inc, 30 * MIN)[-1] == (Contact.DEVOPS, False)


def test_p3_notifies_team_and_p4_goes_to_backlog_never_paged() -> None:
    assert _due(_incident(Severity.P3), 48 * 60 * MIN) == [(Contact.TEAM, False)]
    assert _due(_incident(Severity.P4), 48 * 60 * MIN) == [(Contact.BACKLOG, False)]


def test_security_incident_goes_to_security_first() -> None:
    chain = escalation_chain(Severity.P2, security=True)
    assert [s.contact for s in chain] == [Contact.SECURITY, Contact.ONCALL, Contact.LEAD, Contact.DEVOPS]
    inc = _incident(Severity.P3, security=True)
    assert _due(inc, timedelta(0)) == [(Contact.SECURITY, False), (Contact.TEAM, False)]


def test_reclassification_redrives_deadlines() -> None:
    inc = _incident(Severity.P2)
    assert Contact.LEAD not in [c for c, _ in _due(inc, 7 * MIN)]
    raised = inc.model_copy(update={"severity": Severity.P1})
    assert (Contact.LEAD, True) in _due(raised, 7 * MIN)


def test_resolved_incident_has_nothing_due() -> None:
    inc = _incident(Severity.P1, status=IncidentStatus.RESOLVED, resolved_at=T0 + MIN)
    assert escalation_due(inc, T0 + 60 * MIN) == []


def test_mitigated_by_automation_but_unacknowledged_still_escalates() -> None:
    inc = _incident(Severity.P1, status=IncidentStatus.MITIGATED, mitigated_at=T0 + 2 * MIN)
    assert (Contact.LEAD, True) in _due(inc, 5 * MIN)


def test_next_escalation_for_a_timer() -> None:
    inc = _incident(Severity.P1)
    step, due = next_escalation(inc, T0 + MIN) or (None, None)
    assert step is not None and (step.contact, due) == (Contact.LEAD, T0 + 5 * MIN)
    assert step.key == "team-lead@300s"


def test_step_keys_are_unique_within_a_chain() -> None:
    for severity in Severity:
        keys = [s.key for s in escalation_chain(severity, security=True)]
        assert len(keys) == len(set(keys))


def test_contact_addresses_come_from_settings() -> None:
    slack = SlackSettings(lead_handle="@alice", devops_channel="#infra")
    assert contact_address(Contact.LEAD, slack) == "@alice"
    assert contact_address(Contact.DEVOPS, slack) == "#infra"
    assert contact_address(Contact.ONCALL, slack) == "@on-call"
    assert contact_address(Contact.SECURITY, slack) == "@security"
    assert contact_address(Contact.TEAM, slack) == "#incidents"


# --- the assessment's failure kinds and the triage's estimates, as tables --------------------------------


@pytest.mark.parametrize(
    ("observed", "kind", "runbook", "because"),
    [
        (Observed(), FailureKind.NONE, "service-down", None),
        (Observed(database_down=True), FailureKind.DATABASE, "database-lost", "database_down"),
        # the database comes first, whatever else fails
        (
            Observed(database_down=True, unreachable=True, saturated=True, apis_down=True),
            FailureKind.DATABASE,
            "database-lost",
            "database_down",
        ),
        (Observed(unreachable=True), FailureKind.INFRASTRUCTURE, "service-down", "unreachable"),
        (
            Observed(unreachable=True, saturated=True),
            FailureKind.INFRASTRUCTURE,
            "resource-exhaustion",
            "unreachable",
        ),
        (Observed(app_failing=True), FailureKind.APPLICATION_CRASH, "service-down", "app_failing"),
        (
            Observed(app_failing=True, app_database=True),
            FailureKind.DATABASE,
            "database-lost",
            "app_failing",
        ),
        # /api/health naming the database means nothing while /api/health answers
        (Observed(app_database=True), FailureKind.NONE, "service-down", None),
        # the service itself failing outranks an external API that is down
        (
            Observed(app_failing=True, apis_down=True),
            FailureKind.APPLICATION_CRASH,
            "service-down",
            "app_failing",
        ),
        (Observed(apis_down=True), FailureKind.EXTERNAL_API, "external-api-failure", "apis_down"),
        (
            Observed(apis_down=True, saturated=True),
            FailureKind.EXTERNAL_API,
            "external-api-failure",
            "apis_down",
        ),
        (Observed(saturated=True), FailureKind.INFRASTRUCTURE, "resource-exhaustion", "saturated"),
    ],
)
def test_failure_kind_by_what_was_observed(
    observed: Observed, kind: FailureKind, runbook: str, because: str | None
) -> None:
    rule = classify_failure(observed)
    assert (rule.kind, rule.runbook) == (kind, runbook)
    assert (rule.when[0] if rule.when else None) == because


def test_every_failure_rule_names_known_facts_and_the_last_one_catches_all() -> None:
    facts = set(Observed.__dataclass_fields__)
    assert all(set(rule.when) <= facts for rule in FAILURE_RULES)
    assert FAILURE_RULES[-1].when == ()


@pytest.mark.parametrize(
    ("kind", "facts", "minutes"),
    [
        (FailureKind.DATABASE, {}, 2.0),  # restart the pool
        (FailureKind.EXTERNAL_API, {}, 1.0),  # the feature flag off
        (FailureKind.INFRASTRUCTURE, {"saturated": True}, 3.0),  # scale up
        (FailureKind.INFRASTRUCTURE, {"saturated": False}, None),  # unreachable, no pressure: unknown
        (FailureKind.APPLICATION_CRASH, {"recent_deploy": True}, 15.0),  # a hotfix: slower than 5 min
        (FailureKind.APPLICATION_CRASH, {}, None),  # no deploy to blame: unknown cause
        (FailureKind.NONE, {"saturated": True, "recent_deploy": True}, None),
    ],
)
def test_fix_time_estimates(kind: FailureKind, facts: dict[str, bool], minutes: float | None) -> None:
    found = estimate_fix(kind, facts)
    assert (found.minutes if found else None) == minutes


@pytest.mark.parametrize(
    ("kind", "facts", "action"),
    [
        (FailureKind.DATABASE, {}, Triage.ATTEMPT_FIX),
        (FailureKind.EXTERNAL_API, {}, Triage.ATTEMPT_FIX),
        (FailureKind.INFRASTRUCTURE, {"saturated": True}, Triage.ATTEMPT_FIX),
        (FailureKind.APPLICATION_CRASH, {"recent_deploy": True}, Triage.ROLLBACK),
        (FailureKind.APPLICATION_CRASH, {}, Triage.ROLLBACK),
    ],
)
def test_estimates_through_the_decision_matrix(
    kind: FailureKind, facts: dict[str, bool], action: Triage
) -> None:
    found = estimate_fix(kind, facts)
    estimate = timedelta(minutes=found.minutes) if found else None
    assert triage(estimate, cause_known=found is not None).action == action


@pytest.mark.parametrize(
    ("runbook", "error_rate", "slow", "diagnosis"),
    [
        ("feature-broken", 50.0, 3, "feature-broken"),  # the incident names its diagnosis
        ("performance-degradation", None, 0, "performance-degradation"),
        ("service-down", 8.0, 0, "error-rate-spike"),  # not a P2 diagnosis: decided by the metrics
        (None, None, 0, "feature-broken"),  # no metrics
        (None, 2.0, 1, "performance-degradation"),
        (None, 5.0, 1, "performance-degradation"),  # 5% is not a spike
        (None, 5.1, 1, "error-rate-spike"),  # errors above 5% win over slowness
        (None, 8.0, 0, "error-rate-spike"),
        (None, 1.0, 0, "feature-broken"),
    ],
)
def test_p2_diagnosis(runbook: str | None, error_rate: float | None, slow: int, diagnosis: str) -> None:
    assert p2_diagnosis(runbook, error_rate, slow) == diagnosis
