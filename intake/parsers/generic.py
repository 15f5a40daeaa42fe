"""Our own JSON schema, for anything that is not Alertmanager, Sentry or Grafana (scripts, cron checks).

Usage::

    payload = GenericPayload.model_validate_json(body)
    alerts = to_alerts(payload, ParseContext())

The schema (docs/intake.md, "Generic JSON"; `GenericPayload.model_json_schema()` prints it)::

    {"alerts": [{
        "name": "DatabaseConnectionLost",          # required, the alert's name (routes the runbook)
        "service": "emotionscare",                 # default: what its labels name (intake/services.py)
        "status": "firing" | "resolved",           # default "firing"
        "severity": "P1".."P4" | "critical" | ..., # optional; may raise the signals' level
        "summary": "...", "description": "...",   # optional
        "fingerprint": "...",                      # optional; default: hash of service + name + labels
        "runbook": "database-lost",                # optional; wins over the routing table
        "labels": {"k": "v"}, "annotations": {"k": "v"},
        "signals": {"database_reachable": false},  # optional, the Signals fields, validated
        "starts_at": "RFC 3339", "ends_at": "RFC 3339"
    }]}

Unknown fields are refused (422 naming them), so a typo such as `"sevrity"` is not silently lost.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from intake.alert import Alert, AlertStatus, Signals
from intake.parsers.common import (
    ParseContext,
    SourceTime,
    key_labels,
    parse_time,
    pick_service,
    stable_fingerprint,
)
from intake.signals import extract_signals

__all__ = ["GenericAlert", "GenericPayload", "to_alerts"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=4000)]


def _finite_signals(signals: Signals) -> Signals:
    """Refuse `"inf"` / `"NaN"` (strings pydantic would read as floats): the store keeps finite numbers."""
    for name, value in signals.observed().items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number")
    return signals


class GenericAlert(BaseModel):
    """One alert in our schema."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    service: Name | None = None
    status: Literal["firing", "resolved"] = "firing"
    severity: Name | None = None
    summary: Text = ""
    description: Text = ""
    fingerprint: Name | None = None
    runbook: Name | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    signals: Annotated[Signals, AfterValidator(_finite_signals)] = Field(default_factory=Signals)
    starts_at: SourceTime | None = None
    ends_at: SourceTime | None = None


class GenericPayload(BaseModel):
    """`{"alerts": [...]}`: one or more alerts."""

    model_config = ConfigDict(extra="forbid")

    alerts: list[GenericAlert] = Field(min_length=1)


def to_alerts(payload: GenericPayload, ctx: ParseContext) -> list[Alert]:
    """One `Alert` per entry; explicit `severity` and `runbook` become the labels of the same names."""
    alerts: list[Alert] = []
    for item in payload.alerts:
        service = (
            pick_service(item.labels, ctx, given=item.service)
            if ctx.catalogue is not None
            else item.service or ctx.default_service
        )
        labels = dict(item.labels)
        if item.severity:
            labels["severity"] = item.severity
        if item.runbook:
            labels["runbook"] = item.runbook
        annotations = dict(item.annotations)
        for key, text in (("summary", item.summary), ("description", item.description)):
            if text:
                annotations[key] = text
        found = extract_signals(
            name=item.name,
            labels=labels,
            annotations=annotations,
            age_s=ctx.firing_for_s(item.status, parse_time(item.starts_at)),
        )
        explicit = item.signals.model_dump(exclude_none=True)
        signals = Signals(**{**found.model_dump(exclude_none=True), **explicit})
        alerts.append(
            Alert(
                source="generic",
                fingerprint=(
                    f"generic:{item.fingerprint}"
                    if item.fingerprint
                    else stable_fingerprint(
                        "generic", service, item.name, key_labels(item.labels, ctx, service)
                    )
                ),
                status=AlertStatus(item.status),
                name=item.name,
                service=service,
                labels=labels,
                annotations=annotations,
                starts_at=parse_time(item.starts_at),
                ends_at=parse_time(item.ends_at),
                signals=signals,
            )
        )
    return alerts
