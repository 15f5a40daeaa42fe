"""Severity: every guide example and every threshold of the Alert Mapping, with the deciding rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runbook.models import Signals
from runbook.severity import LEVELS, RULES, Classification, Severity, classify, most_severe

P1, P2, P3, P4 = Severity.P1, Severity.P2, Severity.P3, Severity.P4

# Guide: Incident Severity Examples, each expressed as the signals monitoring would report.
EXAMPLES = [
    # P1 Examples
    ("Homepage returns 500 error", Signals(server_errors_5xx=True), P1, "p1.service_unavailable"),
    ("Login broken for all users", Signals(auth_failure_rate_pct=100), P1, "p1.login_broken_for_all"),
    (
        "Database completely inaccessible",
        Signals(database_reachable=False),
        P1,
        "p1.database_connection_lost",
    ),
    (
        "Memory at 100% for 5+ minutes",
        Signals(memory_pct=100, saturated_for_s=360),
        P1,
        "p1.memory_at_100_sustained",
    ),
    ("CPU at 100% for 5+ minutes", Signals(cpu_pct=100, saturated_for_s=300), P1, "p1.cpu_at_100_sustained"),
    ("Datadog shows all requests failing", Signals(error_rate_pct=100), P1, "p1.all_requests_failing"),
    # P2 Examples
    (
        "Journal creation fails (but read works)",
        Signals(major_feature_broken=True),
        P2,
        "p2.major_feature_broken",
    ),
    ("8% of requests timeout", Signals(error_rate_pct=8), P2, "p2.error_rate_gt_5"),
    ("Music feature completely broken", Signals(key_integration_down=True), P2, "p2.key_integration_down"),
    ("API response time > 3 seconds consistently", Signals(p95_latency_ms=3400), P2, "p2.p95_gt_3s"),
    (
        "Authentication service intermittently failing",
        Signals(auth_failure_rate_pct=25),
        P2,
        "p2.auth_failures_gt_10",
    ),
    # P3 Examples
    ("One user reports issue", Signals(single_feature_broken=True), P3, "p3.single_feature_broken"),
    (
        "Performance slightly degraded (900ms)",
        Signals(p95_latency_ms=900, degraded_performance=True),
        P3,
        "p3.degraded_performance",
    ),
    ("Specific edge case broken", Signals(single_feature_broken=True), P3, "p3.single_feature_broken"),
    ("Non-critical API slow (< 2s)", Signals(p95_latency_ms=1900), P3, "p3.p95_1s_to_3s"),
    ("UI display bug", Signals(single_feature_broken=True), P3, "p3.single_feature_broken"),
    # P4 Examples
    ("Typo in error message", Signals(cosmetic_only=True), P4, "p4.cosmetic"),
    ("Missing console log", Signals(warning_only=True), P4, "p4.non_critical_warning"),
    ("Optimization opportunity", Signals(error_rate_pct=0.1, p95_latency_ms=400), P4, "p4.error_rate_lt_1"),
    ("Deprecated API warning", Signals(warning_only=True), P4, "p4.non_critical_warning"),
    ("Non-critical test failing", Signals(warning_only=True), P4, "p4.non_critical_warning"),
]


@pytest.mark.parametrize(("example", "signals", "level", "rule"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_guide_examples(example: str, signals: Signals, level: Severity, rule: str) -> None:
    c = classify(signals)
    assert (c.severity, c.rule) == (level, rule), c.reason


# Guide: Alert Mapping to Severity, each threshold on both sides of its boundary.
BOUNDARIES = [
    # Error rate: "> 5%" is P2, "1-5%" is P3, "< 1%" is P4; 100% is "all requests failing".
    (Signals(error_rate_pct=5.1), P2, "p2.error_rate_gt_5"),
    (Signals(error_rate_pct=5.0), P3, "p3.error_rate_1_to_5"),
    (Signals(error_rate_pct=1.0), P3, "p3.error_rate_1_to_5"),
    (Signals(error_rate_pct=0.9), P4, "p4.error_rate_lt_1"),
    (Signals(error_rate_pct=0.0), P4, "p4.error_rate_lt_1"),
    (Signals(error_rate_pct=99.9), P2, "p2.error_rate_gt_5"),
    (Signals(error_rate_pct=100), P1, "p1.all_requests_failing"),
    # the status-update example's 6% is P2 by the mapping (docs/severity.md)
    (Signals(error_rate_pct=6), P2, "p2.error_rate_gt_5"),
    # P95: "> 3s" is P2, "1-3s" is P3
    (Signals(p95_latency_ms=3001), P2, "p2.p95_gt_3s"),
    (Signals(p95_latency_ms=3000), P3, "p3.p95_1s_to_3s"),
    (Signals(p95_latency_ms=1000), P3, "p3.p95_1s_to_3s"),
    (Signals(p95_latency_ms=999), P4, "p4.default"),
    # Auth failures: "> 10%" is P2; all failing is "no users can access"
    (Signals(auth_failure_rate_pct=10.1), P2, "p2.auth_failures_gt_10"),
    (Signals(auth_failure_rate_pct=10.0), P4, "p4.default"),
    (Signals(auth_failure_rate_pct=99.9), P2, "p2.auth_failures_gt_10"),
    (Signals(auth_failure_rate_pct=100), P1, "p1.login_broken_for_all"),
    # Memory/CPU at 100%: P1 only sustained 5+ minutes
    (Signals(cpu_pct=100, saturated_for_s=300), P1, "p1.cpu_at_100_sustained"),
    (Signals(cpu_pct=100, saturated_for_s=299), P3, "p3.cpu_at_100_brief"),
    (Signals(cpu_pct=100, saturated_for_s=60), P3, "p3.cpu_at_100_brief"),
    (Signals(cpu_pct=100), P3, "p3.cpu_at_100_brief"),
    (Signals(cpu_pct=99.9, saturated_for_s=600), P4, "p4.default"),
    (Signals(memory_pct=100, saturated_for_s=300), P1, "p1.memory_at_100_sustained"),
    (Signals(memory_pct=100, saturated_for_s=60), P3, "p3.memory_at_100_brief"),
    (Signals(memory_pct=99.9, saturated_for_s=600), P4, "p4.default"),
    # the boolean P1 lines, both ways
    (Signals(service_reachable=False), P1, "p1.service_unreachable"),
    (Signals(service_reachable=True), P4, "p4.default"),
    (Signals(server_errors_5xx=True), P1, "p1.service_unavailable"),
    (Signals(server_errors_5xx=False), P4, "p4.default"),
    (Signals(database_reachable=False), P1, "p1.database_connection_lost"),
    (Signals(database_reachable=True), P4, "p4.default"),
    (Signals(all_requests_timing_out=True), P1, "p1.all_requests_timing_out"),
    (Signals(all_requests_timing_out=False), P4, "p4.default"),
    # the boolean P2/P3/P4 lines, both ways
    (Signals(key_integration_down=True), P2, "p2.key_integration_down"),
    (Signals(key_integration_down=False), P4, "p4.default"),
    (Signals(major_feature_broken=True), P2, "p2.major_feature_broken"),
    (Signals(single_feature_broken=True), P3, "p3.single_feature_broken"),
    (Signals(single_feature_broken=False), P4, "p4.default"),
    (Signals(degraded_performance=True), P3, "p3.degraded_performance"),
    (Signals(cosmetic_only=True), P4, "p4.cosmetic"),
    (Signals(warning_only=True), P4, "p4.non_critical_warning"),
    (Signals(), P4, "p4.default"),
]


@pytest.mark.parametrize(
    ("signals", "level", "rule"), BOUNDARIES, ids=[f"{b[2]}:{b[0].observed()}" for b in BOUNDARIES]
)
def test_mapping_boundaries(signals: Signals, level: Severity, rule: str) -> None:
    c = classify(signals)
    assert (c.severity, c.rule) == (level, rule), c.reason


def test_most_severe_rule_wins_and_all_matches_are_kept() -> None:
    c = classify(Signals(error_rate_pct=3, p95_latency_ms=3500, database_reachable=False, cosmetic_only=True))
    assert c.severity is P1
    assert c.rule == "p1.database_connection_lost"
    assert c.matched == ("p1.database_connection_lost", "p2.p95_gt_3s", "p3.error_rate_1_to_5", "p4.cosmetic")


def test_ties_within_a_level_go_to_the_first_rule_in_table_order() -> None:
    c = classify(Signals(p95_latency_ms=4000, error_rate_pct=7))
    assert c.rule == "p2.error_rate_gt_5"
    assert c.matched == ("p2.error_rate_gt_5", "p2.p95_gt_3s")


def test_reason_names_the_guide_line_and_the_numbers() -> None:
    c = classify(Signals(error_rate_pct=5.1))
    assert c.reason == "Error rate > 5%: error rate is 5.1% (> 5%)"
    c = classify(Signals(cpu_pct=100, saturated_for_s=60))
    assert "60 s" in c.reason and "300" in c.reason


def test_rule_ids_are_unique_prefixed_by_their_level_and_ordered_most_severe_first() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert rule.id.startswith(rule.severity.value.lower() + ".")
    ranks = [r.severity.rank for r in RULES]
    assert ranks == sorted(ranks)


def test_levels_are_the_guides_table() -> None:
    assert [LEVELS[s].response_time for s in Severity] == [
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(hours=1),
        timedelta(hours=24),
    ]
    assert LEVELS[P1].label == "P1 - Critical"
    assert LEVELS[P1].definition == "Service completely down, no users can access"
    assert LEVELS[P1].escalation == "Immediate escalation to lead + PagerDuty"
    assert [LEVELS[s].page_pagerduty for s in Severity] == [True, False, False, False]
    assert [LEVELS[s].escalate_to_lead for s in Severity] == [True, True, False, False]
    assert [LEVELS[s].notify_team for s in Severity] == [True, True, True, False]
    assert [LEVELS[s].add_to_backlog for s in Severity] == [False, False, False, True]


def test_severity_ordering_helpers() -> None:
    assert P1.more_severe_than(P2) and not P2.more_severe_than(P1) and not P3.more_severe_than(P3)
    assert most_severe([P3, P1, P4]) is P1
    assert P2.raised() is P1 and P1.raised() is P1 and P4.raised() is P3
    assert Severity("P2") is P2 and str(P2) == "P2"


def test_classification_round_trips_as_json() -> None:
    c = classify(Signals(error_rate_pct=8))
    assert Classification.model_validate_json(c.model_dump_json()) == c
