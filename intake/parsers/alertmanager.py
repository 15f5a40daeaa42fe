"""Prometheus Alertmanager webhook, payload version 4: one group of alerts per request.

Usage::

    payload = AlertmanagerPayload.model_validate_json(body)
    alerts = to_alerts(payload, ParseContext())      # one Alert per entry of `alerts`, firing or resolved

Shape (Alertmanager docs, `<webhook_config>`): `version`, `groupKey`, `truncatedAlerts`, `status`,
`receiver`, `groupLabels`, `commonLabels`, `commonAnnotations`, `externalURL`, and `alerts[]` with
`status`, `labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`, `fingerprint`. Unknown fields
are kept out of the way (ignored), so a newer Alertmanager does not get refused.

Fingerprint: Alertmanager's own (a hash of the alert's label set) as `alertmanager:<fingerprint>`;
without one, a stable hash of service + alert name + labels.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from intake.alert import Alert, AlertSource, AlertStatus
from intake.parsers.common import ParseContext, SourceTime, parse_time, pick_service, stable_fingerprint
from intake.signals import extract_signals
from intake.standard_rules import expr_from_generator_url

__all__ = ["AlertmanagerAlert", "AlertmanagerPayload", "to_alerts"]


class AlertmanagerAlert(BaseModel):
    """One entry of `alerts`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: SourceTime = Field(alias="startsAt")
    ends_at: SourceTime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""


class AlertmanagerPayload(BaseModel):
    """The whole webhook body."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: str = "4"
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AlertmanagerAlert] = Field(min_length=1)


def to_alert(
    item: AlertmanagerAlert,
    ctx: ParseContext,
    *,
    source: str = "alertmanager",
    values: dict[str, float] | None = None,
    value_string: str = "",
) -> Alert:
    """One normalised `Alert` from one Alertmanager (or Grafana: `values`, `value_string`) alert entry.

    The rule's expression is read from `generatorURL` (`g0.expr`) and the firing age from `startsAt`,
    for the signals of standard rules (intake/standard_rules.py).
    """
    name = item.labels.get("alertname", "").strip() or "unnamed"
    service = pick_service(item.labels, ctx)
    fingerprint = (
        f"{source}:{item.fingerprint.strip()}"
        if item.fingerprint.strip()
        else stable_fingerprint(source, service, name, item.labels)
    )
    annotations = dict(item.annotations)
    if item.generator_url:
        annotations.setdefault("generator_url", item.generator_url)
    starts_at = parse_time(item.starts_at)
    signals = extract_signals(
        name=name,
        labels=item.labels,
        annotations=item.annotations,
        values=values,
        value_string=value_string,
        expr=expr_from_generator_url(item.generator_url),
        age_s=ctx.firing_for_s(item.status, starts_at),
    )
    return Alert(
        source=AlertSource(source),
        fingerprint=fingerprint,
        status=AlertStatus(item.status),
        name=name,
        service=service,
        labels=dict(item.labels),
        annotations=annotations,
        starts_at=starts_at,
        ends_at=parse_time(item.ends_at),
        signals=signals,
    )


def to_alerts(payload: AlertmanagerPayload, ctx: ParseContext) -> list[Alert]:
    """Every alert of the group, firing and resolved, in the payload's order."""
    return [to_alert(item, ctx) for item in payload.alerts]
