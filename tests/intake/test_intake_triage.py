"""Severity (explicit label wins, else the guide's classifier) and the runbook each alert calls for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from intake.alert import Alert, Signals
from intake.config import IntakeConfig, RouteConfig
from intake.parsers import ParseContext, parse
from intake.triage import Router, explicit_severity, triage
from runbook.severity import Severity

DATA = Path(__file__).resolve().parents[1] / "data"


def alert(name: str, labels: dict[str, str] | None = None, **signals: Any) -> Alert:
    return Alert(
        source="generic",
        fingerprint=f"generic:{name}",
        name=name,
        labels=labels or {},
        signals=Signals(**signals),
    )


def test_recorded_group_gets_the_guide_levels_and_runbooks() -> None:
    alerts = parse(
        "alertmanager", (DATA / "alertmanager_group_3_firing_1_resolved.json").read_bytes(), ParseContext()
    )

    verdicts = [triage(a, Router()) for a in alerts]

    assert [(v.severity, v.rule, v.runbook) for v in verdicts] == [
        (Severity.P1, "p1.service_unreachable", "service-down"),  # the label agrees with the signals
        (Severity.P2, "p2.error_rate_gt_5", "error-rate-spike"),
        (Severity.P1, "p1.memory_at_100_sustained", "resource-exhaustion"),
        (Severity.P3, "label.severity", "performance-degradation"),
    ]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("P1", Severity.P1),
        ("sev2", Severity.P2),
        ("critical", Severity.P1),
        ("error", Severity.P2),
        ("Warning", Severity.P3),
        ("info", Severity.P4),
    ],
)
def test_explicit_severity_words(word: str, expected: Severity) -> None:
    assert explicit_severity({"severity": word}) == ("severity", expected)


def test_unknown_severity_word_falls_back_to_the_signals() -> None:
    verdict = triage(alert("X", {"severity": "spicy"}, error_rate_pct=6.0), Router())

    assert (verdict.severity, verdict.rule) == (Severity.P2, "p2.error_rate_gt_5")


def test_a_lower_label_does_not_lower_the_level_and_the_reason_says_so() -> None:
    verdict = triage(alert("X", {"severity": "info"}, database_reachable=False), Router())

    assert verdict.severity is Severity.P1
    assert verdict.rule == "p1.database_connection_lost"
    assert "label severity='info' says P4; a label may raise the level, never lower it" in verdict.reason


def test_a_higher_label_raises_the_level_and_the_reason_keeps_what_the_signals_said() -> None:
    verdict = triage(alert("X", {"severity": "critical"}, error_rate_pct=2.0), Router())

    assert verdict.severity is Severity.P1
    assert verdict.rule == "label.severity"
    assert "the signals alone: P3, p3.error_rate_1_to_5" in verdict.reason


@pytest.mark.parametrize(
    ("name", "signals", "runbook"),
    [
        ("PostgresInstanceDown", {}, "database-lost"),
        ("Hume API down", {}, "external-api-failure"),
        ("KubePodOOMKilled", {}, "resource-exhaustion"),
        ("ServiceDown", {}, "service-down"),
        ("Anything", {"service_reachable": False}, "service-down"),
        ("Anything", {"database_reachable": True}, None),  # reachable is no trouble
        ("HighErrorRate", {}, "error-rate-spike"),
        ("SlowJournalApi", {}, "performance-degradation"),
        ("Unrelated", {}, None),
    ],
)
def test_default_routes(name: str, signals: dict[str, Any], runbook: str | None) -> None:
    assert Router().route(alert(name, **signals)) == runbook


def test_explicit_runbook_label_must_name_a_known_runbook() -> None:
    assert Router().route(alert("ServiceDown", {"runbook": "database-lost"})) == "database-lost"
    assert Router().route(alert("ServiceDown", {"runbook": "rm-rf"})) == "service-down"


def test_configured_routes_come_before_the_defaults() -> None:
    config = IntakeConfig(routes=(RouteConfig(runbook="service-down", labels={"team": "^edge$"}),))

    assert config.router().route(alert("HighErrorRate", {"team": "edge"})) == "service-down"
    assert config.router().route(alert("HighErrorRate", {"team": "edge-2"})) == "error-rate-spike"


def test_a_bad_route_regex_is_refused_with_its_field() -> None:
    with pytest.raises(ValueError, match="name\n  Value error, not a regular expression"):
        RouteConfig(runbook="x", name="(")
