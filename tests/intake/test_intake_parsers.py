"""Recorded payloads (tests/data) parse to the alerts they describe; bad shapes name the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from intake.alert import AlertStatus
from intake.errors import BodyNotJSON, PayloadInvalid
from intake.parsers import ParseContext, parse
from intake.parsers.common import stable_fingerprint
from intake.signals import extract_signals
from intake.triage import Router, triage
from runbook.severity import Severity

DATA = Path(__file__).resolve().parents[1] / "data"
CTX = ParseContext(sentry_projects={"emotionscare-web": "emotionscare"})


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_alertmanager_group_of_3_firing_and_1_resolved_gives_3_plus_1_alerts() -> None:
    alerts = parse("alertmanager", load("alertmanager_group_3_firing_1_resolved.json"), CTX)

    firing = [a for a in alerts if a.status is AlertStatus.FIRING]
    resolved = [a for a in alerts if a.status is AlertStatus.RESOLVED]
    assert [a.name for a in firing] == ["ServiceDown", "HighErrorRate", "HighMemoryUsage"]
    assert [a.name for a in resolved] == ["HighLatencyP95"]
    assert {a.service for a in alerts} == {"emotionscare"}
    assert [a.fingerprint for a in alerts] == [
        "alertmanager:5c3b2a91de07f4a1",
        "alertmanager:a17f0e3c9b2d6e45",
        "alertmanager:0f4e6d2b8a1c3957",
        "alertmanager:d2c91b7e44a0f3b8",
    ]
    # Go's zero time means "not ended": no end time on the firing ones.
    assert all(a.ends_at is None for a in firing)
    assert resolved[0].ends_at == datetime(2026, 11, 26, 14, 5, 5, tzinfo=UTC)
    assert firing[0].starts_at == datetime(2026, 11, 26, 14, 8, 5, 123000, tzinfo=UTC)


def test_alertmanager_signals_come_from_labels_annotations_and_names() -> None:
    down, errors, memory, latency = parse(
        "alertmanager", load("alertmanager_group_3_firing_1_resolved.json"), CTX
    )

    assert down.signals.service_reachable is False  # "ServiceDown"
    assert errors.signals.error_rate_pct == pytest.approx(7.2)  # signal label + value annotation
    assert (memory.signals.memory_pct, memory.signals.saturated_for_s) == (100.0, 360.0)  # named annotations
    assert latency.signals.p95_latency_ms == 850.0


def test_alertmanager_without_service_label_uses_the_default_service() -> None:
    [alert] = parse(
        "alertmanager", load("alertmanager_probe_failure.json"), ParseContext(default_service="svc")
    )

    assert (alert.name, alert.service, alert.fingerprint) == (
        "ProbeFailure",
        "svc",
        "alertmanager:1a30ba71cca2921f",
    )


def test_grafana_alerts_take_signals_from_values_and_keep_grafana_links() -> None:
    cpu, hume = parse("grafana", load("grafana_firing.json"), CTX)

    assert cpu.fingerprint == "grafana:c6eadffa33fcdf37"
    assert cpu.signals.cpu_pct == 100.0  # first ref of `values` (B), named by the `signal` label
    assert cpu.annotations["values"] == "B=100, C=1"
    assert cpu.annotations["silence_url"].startswith("https://grafana.example.com/alerting/silence/new")
    assert hume.signals.key_integration_down is True
    [resolved] = parse("grafana", load("grafana_resolved.json"), CTX)
    assert (resolved.status, resolved.fingerprint) == (AlertStatus.RESOLVED, cpu.fingerprint)


def test_sentry_issue_alert_and_the_issue_resolved_share_a_fingerprint() -> None:
    [fired] = parse("sentry", load("sentry_event_alert.json"), CTX, sentry_resource="event_alert")
    [resolved] = parse("sentry", load("sentry_issue_resolved.json"), CTX, sentry_resource="issue")

    assert fired.status is AlertStatus.FIRING
    assert resolved.status is AlertStatus.RESOLVED
    assert fired.fingerprint == resolved.fingerprint == "sentry:issue:4711000001"
    assert fired.name == "[P2] Journal creation failing"
    assert fired.service == resolved.service == "emotionscare"
    assert fired.labels["severity"] == "P2"  # from the rule's name
    assert fired.labels["runbook"] == "feature-broken"  # from the alert rule action's settings
    assert fired.labels["environment"] == "production"  # event tags become labels


def test_sentry_metric_alert_value_becomes_a_signal() -> None:
    [critical] = parse(
        "sentry", load("sentry_metric_alert_critical.json"), CTX, sentry_resource="metric_alert"
    )
    [resolved] = parse(
        "sentry", load("sentry_metric_alert_resolved.json"), CTX, sentry_resource="metric_alert"
    )

    assert critical.signals.p95_latency_ms == 3450.0
    assert critical.fingerprint == resolved.fingerprint == "sentry:metric_alert:5:4"
    assert (critical.status, resolved.status) == (AlertStatus.FIRING, AlertStatus.RESOLVED)
    assert "severity" not in critical.labels  # the value decides, not Sentry's trigger name
    assert triage(critical, Router()).severity is Severity.P2


def test_sentry_resource_is_inferred_from_the_body_when_the_header_is_missing() -> None:
    [alert] = parse("sentry", load("sentry_metric_alert_critical.json"), CTX, sentry_resource=None)

    assert alert.fingerprint == "sentry:metric_alert:5:4"


@pytest.mark.parametrize("resource", ["installation", "comment", "error"])
def test_sentry_resources_that_are_not_alerts_give_no_alert(resource: str) -> None:
    assert parse("sentry", b'{"action": "created", "data": {}}', CTX, sentry_resource=resource) == []


def test_sentry_issue_assigned_is_not_an_alert() -> None:
    body = json.loads(load("sentry_issue_resolved.json"))
    body["action"] = "assigned"

    assert parse("sentry", json.dumps(body).encode(), CTX, sentry_resource="issue") == []


def test_generic_schema_round_trip() -> None:
    [fired] = parse("generic", load("generic_firing.json"), CTX)
    [resolved] = parse("generic", load("generic_resolved.json"), CTX)

    assert fired.signals.database_reachable is False
    assert fired.fingerprint == resolved.fingerprint
    assert fired.fingerprint == stable_fingerprint(
        "generic",
        "emotionscare",
        "DatabaseConnectionLost",
        {"namespace": "production", "component": "database"},
    )
    assert resolved.ends_at == datetime(2026, 11, 26, 14, 12, 30, tzinfo=UTC)


def test_stable_fingerprint_ignores_label_order_and_sees_label_values() -> None:
    a = stable_fingerprint("generic", "svc", "X", {"a": "1", "b": "2"})

    assert a == stable_fingerprint("generic", "svc", "X", {"b": "2", "a": "1"})
    assert a != stable_fingerprint("generic", "svc", "X", {"a": "1", "b": "3"})
    assert a != stable_fingerprint("generic", "other", "X", {"a": "1", "b": "2"})


@pytest.mark.parametrize(
    ("source", "body", "field"),
    [
        ("alertmanager", {"status": "firing"}, "alerts: Field required"),
        ("alertmanager", {"status": "firing", "alerts": []}, "alerts: List should have at least 1 item"),
        (
            "alertmanager",
            {
                "status": "firing",
                "alerts": [{"status": "burning", "labels": {}, "startsAt": "2026-01-01T00:00:00Z"}],
            },
            "alerts[0].status: Input should be 'firing' or 'resolved'",
        ),
        (
            "alertmanager",
            {
                "status": "firing",
                "alerts": [{"status": "firing", "labels": {"a": 1}, "startsAt": "2026-01-01T00:00:00Z"}],
            },
            "alerts[0].labels.a: Input should be a valid string",
        ),
        (
            "grafana",
            {"status": "firing", "alerts": [{"status": "firing", "labels": {}}]},
            "alerts[0].startsAt",
        ),
        (
            "generic",
            {"alerts": [{"sevrity": "P1", "name": "x"}]},
            "alerts[0].sevrity: Extra inputs are not permitted",
        ),
        (
            "generic",
            {"alerts": [{"name": "x", "signals": {"error_rate_pct": 170}}]},
            "alerts[0].signals.error_rate_pct",
        ),
        ("generic", {"alerts": [{"name": ""}]}, "alerts[0].name"),
        (
            "sentry",
            {"action": "triggered", "data": {"event": {"title": "x"}}},
            "data.event.issue_id: Field required",
        ),
        ("sentry", {"action": "exploded", "data": {"metric_alert": {}}}, "action: Input should be"),
        ("sentry", {"action": "x", "data": {}}, "Sentry-Hook-Resource: missing"),
    ],
)
def test_invalid_shapes_name_the_field(source: str, body: object, field: str) -> None:
    with pytest.raises(PayloadInvalid) as caught:
        parse(source, json.dumps(body).encode(), CTX)

    assert field in caught.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"{", "body is not JSON"), (b"\xff\xfe", "body is not UTF-8"), (b"", "body is not JSON")],
)
def test_bodies_that_are_not_json(body: bytes, message: str) -> None:
    with pytest.raises(BodyNotJSON) as caught:
        parse("generic", body, CTX)

    assert message in caught.value.message


def test_a_json_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(PayloadInvalid, match="body: expected a JSON object, got list"):
        parse("alertmanager", b"[]", CTX)


def test_too_many_alerts_in_one_request() -> None:
    body = {"alerts": [{"name": f"a{i}"} for i in range(3)]}

    with pytest.raises(PayloadInvalid, match="3 alerts in one request, at most 2"):
        parse("generic", json.dumps(body).encode(), ParseContext(max_alerts=2))


def test_a_timestamp_out_of_range_is_a_field_error_not_a_crash() -> None:
    body = {"alerts": [{"name": "x", "starts_at": "9999-12-31T23:59:59-05:00"}]}

    with pytest.raises(PayloadInvalid, match=r"alerts\[0\]\.starts_at: Value error, timestamp out of range"):
        parse("generic", json.dumps(body).encode(), CTX)


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        ({"error_ratio": "0.072"}, {}, {"error_rate_pct": 7.2}),
        ({}, {"p95_latency_s": "3.5"}, {"p95_latency_ms": 3500.0}),
        ({"database_reachable": "false"}, {}, {"database_reachable": False}),
        ({"cpu": "high"}, {}, {}),  # not a number: ignored, never fatal
        ({"error_rate_pct": "150"}, {}, {}),  # outside Signals' bounds: dropped
        ({"signal": "cpu_pct"}, {"value": "97.5"}, {"cpu_pct": 97.5}),
        ({"signal": "no_such_field"}, {"value": "1"}, {}),
    ],
)
def test_signal_conventions(
    labels: dict[str, str], annotations: dict[str, str], expected: dict[str, object]
) -> None:
    signals = extract_signals(name="Something", labels=labels, annotations=annotations)

    assert signals.observed() == pytest.approx(expected)
