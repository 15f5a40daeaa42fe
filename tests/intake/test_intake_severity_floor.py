"""The guide's mapping is a floor: labels raise a level, never lower it; standard rules' values are read.

Table-driven, through the real parsers (Alertmanager and Grafana webhook bodies of the upstream
documented shapes, rules as the Prometheus and Grafana docs and the common community rule sets write
them) and `triage`, with the clock pinned so that "firing for 6 minutes" is exact.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from intake.parsers import ParseContext, parse
from intake.standard_rules import parse_duration_s
from intake.triage import Router, triage
from runbook.severity import Severity

DATA = Path(__file__).resolve().parents[1] / "data"
NOW = datetime(2026, 11, 26, 14, 10, tzinfo=UTC)
CTX = ParseContext(clock=lambda: NOW)


def _ago(minutes: float) -> str:
    return (NOW - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def prometheus(
    name: str,
    expr: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    firing_min: float = 1.0,
) -> tuple[str, bytes]:
    """An Alertmanager webhook (version 4) with one alert of a Prometheus rule."""
    alert = {
        "status": "firing",
        "labels": {"alertname": name, "service": "emotionscare", **(labels or {})},
        "annotations": annotations or {},
        "startsAt": _ago(firing_min),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus:9090/graph?g0.expr={quote_plus(expr)}&g0.tab=1",
        "fingerprint": "f00d",
    }
    body = {"version": "4", "status": "firing", "receiver": "incident-runbooks", "alerts": [alert]}
    return "alertmanager", json.dumps(body).encode()


def grafana(name: str, *, firing_min: float = 1.0, **extra: Any) -> tuple[str, bytes]:
    """A Grafana webhook with one alert, `values` / `valueString` as Grafana's docs show them."""
    alert = {
        "status": "firing",
        "labels": {"alertname": name, "team": "blue", "zone": "us-1"},
        "annotations": {"description": f"The system has {name.lower()}"},
        "startsAt": _ago(firing_min),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
        "fingerprint": "c6eadffa33fcdf37",
        **extra,
    }
    return "grafana", json.dumps(
        {"receiver": "r", "status": "firing", "orgId": 1, "alerts": [alert]}
    ).encode()


def probe_failure_labelled_warning() -> tuple[str, bytes]:
    doc = json.loads((DATA / "alertmanager_probe_failure.json").read_bytes())
    doc["alerts"][0]["labels"]["severity"] = "warning"
    return "alertmanager", json.dumps(doc).encode()


CONTAINER_MEMORY = (
    '(sum(container_memory_working_set_bytes{name!=""}) BY (instance, name) / '
    "sum(container_spec_memory_limit_bytes > 0) BY (instance, name) * 100) > 80"
)
ERROR_RATIO = 'sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05'

CASES: list[tuple[str, tuple[str, bytes], Severity, str]] = [
    (
        "severity=warning on a probe that says the service is unreachable",
        probe_failure_labelled_warning(),
        Severity.P1,
        "p1.service_unreachable",
    ),
    (
        "memory at 100% for 6 minutes, no signal label (VALUE line of the community rules)",
        prometheus(
            "ContainerHighMemoryUsage",
            CONTAINER_MEMORY,
            labels={"severity": "warning"},
            annotations={"description": "Container Memory usage is above 80%\n  VALUE = 100\n  LABELS = {}"},
            firing_min=6,
        ),
        Severity.P1,
        "p1.memory_at_100_sustained",
    ),
    (
        "memory at 100% for 2 minutes: degraded, not yet P1",
        prometheus("ContainerHighMemoryUsage", CONTAINER_MEMORY, annotations={"value": "100"}, firing_min=2),
        Severity.P3,
        "p3.memory_at_100_brief",
    ),
    (
        "memory at 100%, firing 1 minute after a `for: 5m`: held 6 minutes",
        prometheus(
            "ContainerHighMemoryUsage",
            CONTAINER_MEMORY,
            annotations={"value": "100", "for": "5m"},
            firing_min=1,
        ),
        Severity.P1,
        "p1.memory_at_100_sustained",
    ),
    (
        "memory *available* at 5% is not memory used at 5% (HostOutOfMemory)",
        prometheus(
            "HostOutOfMemory",
            "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100 < 10",
            labels={"severity": "warning"},
            annotations={"value": "5"},
        ),
        Severity.P3,
        "label.severity",
    ),
    (
        "a label higher than the signals raises: critical on a 2% error rate",
        prometheus(
            "HighErrorRate", ERROR_RATIO, labels={"severity": "critical"}, annotations={"value": "2%"}
        ),
        Severity.P1,
        "label.severity",
    ),
    (
        "error ratio 0.072 from the expression's ratio: 7.2% (> 5%)",
        prometheus("HighErrorRatio", ERROR_RATIO, annotations={"value": "0.072"}),
        Severity.P2,
        "p2.error_rate_gt_5",
    ),
    (
        "humanizePercentage's 7.2%",
        prometheus("HighErrorRate", ERROR_RATIO, annotations={"value": "7.2%"}),
        Severity.P2,
        "p2.error_rate_gt_5",
    ),
    (
        "the Prometheus docs' HighRequestLatency (seconds) at 3.5 s, label page",
        prometheus(
            "HighRequestLatency",
            'job:request_latency_seconds:mean5m{job="myjob"} > 0.5',
            labels={"severity": "page"},
            annotations={"summary": "High request latency", "value": "3.5"},
        ),
        Severity.P1,
        "label.severity",
    ),
    (
        "the same latency without a label: P95 > 3 s",
        prometheus(
            "HighRequestLatency",
            'job:request_latency_seconds:mean5m{job="myjob"} > 0.5',
            annotations={"value": "3.5"},
        ),
        Severity.P2,
        "p2.p95_gt_3s",
    ),
    (
        "latency in milliseconds",
        prometheus("ApiLatencyP95High", "api_latency_p95_ms > 3000", annotations={"value": "3500ms"}),
        Severity.P2,
        "p2.p95_gt_3s",
    ),
    (
        "the Prometheus docs' InstanceDown: up == 0",
        prometheus("InstanceDown", "up == 0", labels={"severity": "page"}),
        Severity.P1,
        "p1.service_unreachable",
    ),
    (
        "Grafana values (the docs' B reduce, C condition) at 100% for 10 minutes",
        grafana("High memory usage", firing_min=10, values={"B": 100, "C": 1}),
        Severity.P1,
        "p1.memory_at_100_sustained",
    ),
    (
        "Grafana values at the docs' 44.2%: no level from memory",
        grafana("High memory usage", values={"B": 44.23943737541908, "C": 1}),
        Severity.P4,
        "p4.default",
    ),
    (
        "Grafana valueString only (older Grafana), CPU at 100% for 10 minutes",
        grafana(
            "High CPU usage",
            firing_min=10,
            valueString="[ var='B' labels={zone=eu-1} value=100 ], [ var='C' labels={zone=eu-1} value=1 ]",
        ),
        Severity.P1,
        "p1.cpu_at_100_sustained",
    ),
]


@pytest.mark.parametrize(("case", "request_", "severity", "rule"), CASES, ids=[c[0] for c in CASES])
def test_the_level_is_the_higher_of_label_and_signals(
    case: str, request_: tuple[str, bytes], severity: Severity, rule: str
) -> None:
    source, body = request_
    [alert] = parse(source, body, CTX)

    verdict = triage(alert, Router())

    assert (verdict.severity, verdict.rule) == (severity, rule), (verdict.reason, alert.signals.observed())


def test_the_recorded_probe_failure_keeps_its_p1_whatever_its_label_says() -> None:
    for word in ("critical", "warning", "info", "P4"):
        _, body = probe_failure_labelled_warning()
        body = body.replace(b'"severity": "warning"', f'"severity": "{word}"'.encode())
        [alert] = parse("alertmanager", body, CTX)
        assert triage(alert, Router()).severity is Severity.P1, word


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300.0), ("1h30m", 5400.0), ("90s", 90.0), ("500ms", 0.5), ("5 minutes", None)],
)
def test_prometheus_durations(text: str, seconds: float | None) -> None:
    assert parse_duration_s(text) == seconds
