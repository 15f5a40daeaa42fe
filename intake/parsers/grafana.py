"""Grafana Alerting (unified alerting) webhook contact point: Alertmanager's shape plus Grafana's fields.

Usage::

    payload = GrafanaPayload.model_validate_json(body)
    alerts = to_alerts(payload, ParseContext())

Shape (Grafana docs, "Configure the webhook notifier for Alerting"): the Alertmanager fields with
`version: "1"`, plus `orgId`, `title`, `state`, `message` on the body and `values` (ref id -> number),
`silenceURL`, `dashboardURL`, `panelURL`, `imageURL` on each alert. `values` feed the signals (a
`signal` label names the field; `signal_ref` the ref, else the first one).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

from intake.alert import Alert
from intake.parsers.alertmanager import AlertmanagerAlert
from intake.parsers.alertmanager import to_alert as _alertmanager_alert
from intake.parsers.common import ParseContext

__all__ = ["GrafanaAlert", "GrafanaPayload", "to_alerts"]


class GrafanaAlert(AlertmanagerAlert):
    """One entry of `alerts`, with Grafana's extra fields."""

    values: dict[str, FiniteFloat | None] | None = None
    """Ref id -> number; a non-finite number (`"NaN"`, `"inf"` as strings) is a 422 naming the ref."""
    value_string: str = Field(default="", alias="valueString")
    silence_url: str = Field(default="", alias="silenceURL")
    dashboard_url: str = Field(default="", alias="dashboardURL")
    panel_url: str = Field(default="", alias="panelURL")
    image_url: str = Field(default="", alias="imageURL")


class GrafanaPayload(BaseModel):
    """The whole webhook body."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    receiver: str = ""
    status: Literal["firing", "resolved"]
    org_id: int | None = Field(default=None, alias="orgId")
    alerts: list[GrafanaAlert] = Field(min_length=1)
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    version: str = "1"
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    title: str = ""
    state: str = ""
    message: str = ""


def to_alerts(payload: GrafanaPayload, ctx: ParseContext) -> list[Alert]:
    """Every alert of the notification, firing and resolved, in the payload's order."""
    alerts: list[Alert] = []
    for item in payload.alerts:
        values = {k: v for k, v in (item.values or {}).items() if v is not None}
        alert = _alertmanager_alert(
            item, ctx, source="grafana", values=values, value_string=item.value_string
        )
        extra = {
            key: url
            for key, url in (
                ("silence_url", item.silence_url),
                ("dashboard_url", item.dashboard_url),
                ("panel_url", item.panel_url),
                ("image_url", item.image_url),
            )
            if url
        }
        if values:
            extra["values"] = ", ".join(f"{k}={v:g}" for k, v in values.items())
        alerts.append(alert.model_copy(update={"annotations": {**extra, **alert.annotations}}))
    return alerts
