"""Sentry integration-platform webhooks: issue alerts, metric alerts, and issue state changes.

Usage::

    alerts = parse_sentry(body, resource="event_alert", ctx=ParseContext())

`resource` is the `Sentry-Hook-Resource` header; without it the shape decides (`data.event`,
`data.metric_alert`, `data.issue`). What each becomes (docs/intake.md, "Sentry"):

- `event_alert` (an issue alert rule fired), action `triggered`: firing; fingerprint
  `sentry:issue:<issue_id>`; name = the rule's label.
- `metric_alert`, action `critical` / `warning` -> firing, `resolved` -> resolved; fingerprint
  `sentry:metric_alert:<org>:<incident id>`.
- `issue`, action `created` / `unresolved` -> firing, `resolved` / `archived` / `ignored` -> resolved;
  fingerprint `sentry:issue:<id>`. Action `assigned`: no alert.
- `installation`, `comment`, `error`, ...: accepted and stored, no alert.

So an `issue` `resolved` webhook resolves the incident an `event_alert` for the same issue opened.

Severity: a rule named with a level (`"[P2] Journal creation failing"`) or an alert-rule action
setting `severity` sets the `severity` label. Metric alerts give their value as a signal when the
aggregate is known (`p95(transaction.duration)` -> `p95_latency_ms`, from Sentry's
`description_text`: `"<value> <aggregate> in the last <N> minutes"`); when it is not, the trigger
(`critical` / `warning`) becomes the `severity` label so that the alert is not mistaken for P4.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from intake.alert import Alert, AlertStatus
from intake.parsers.common import ParseContext, SourceTime, parse_time, pick_service
from intake.signals import extract_signals

__all__ = [
    "IGNORED_RESOURCES",
    "EventAlertPayload",
    "IssuePayload",
    "MetricAlertPayload",
    "parse_sentry",
    "project_slug_from_url",
]

IGNORED_RESOURCES = frozenset({"installation", "comment", "error", "seer", "preprod_artifact"})
SentryId = int | str


def _as_str(value: SentryId | None) -> str:
    return "" if value is None else str(value)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SentrySetting(_Model):
    name: str
    value: Any = None


class IssueAlert(_Model):
    title: str = ""
    settings: list[SentrySetting] = Field(default_factory=list)


class SentryEvent(_Model):
    event_id: str = ""
    issue_id: SentryId
    title: str = ""
    culprit: str | None = ""
    level: str | None = ""
    datetime: SourceTime | None = None
    tags: list[Any] = Field(default_factory=list)
    project: SentryId | None = None
    release: str | None = None
    url: str = ""
    web_url: str = ""
    issue_url: str = ""

    @field_validator("issue_id")
    @classmethod
    def _issue_id_not_empty(cls, value: SentryId) -> SentryId:
        if str(value).strip() == "":
            raise ValueError("must not be empty")
        return value

    def tag_map(self) -> dict[str, str]:
        """Tags as a dict; Sentry sends `[["key", "value"], ...]` (or `{"key": ..., "value": ...}`)."""
        out: dict[str, str] = {}
        for tag in self.tags:
            if isinstance(tag, list | tuple) and len(tag) == 2:
                key, value = tag
            elif isinstance(tag, dict) and "key" in tag:
                key, value = tag.get("key"), tag.get("value")
            else:
                continue
            if isinstance(key, str) and isinstance(value, str | int | float) and not isinstance(value, bool):
                out[key] = str(value)
        return out


class EventAlertData(_Model):
    event: SentryEvent
    triggered_rule: str = ""
    issue_alert: IssueAlert | None = None


class EventAlertPayload(_Model):
    """`Sentry-Hook-Resource: event_alert`."""

    action: Literal["triggered"]
    data: EventAlertData


class AlertRule(_Model):
    id: SentryId
    name: str = ""
    aggregate: str = ""
    dataset: str = ""
    environment: str | None = None
    query: str = ""
    projects: list[str] = Field(default_factory=list)


class MetricAlert(_Model):
    id: SentryId
    identifier: SentryId | None = None
    organization_id: SentryId | None = None
    title: str = ""
    alert_rule: AlertRule
    projects: list[str] = Field(default_factory=list)
    date_started: SourceTime | None = None
    date_closed: SourceTime | None = None


class MetricAlertData(_Model):
    metric_alert: MetricAlert
    description_text: str = ""
    description_title: str = ""
    web_url: str = ""


class MetricAlertPayload(_Model):
    """`Sentry-Hook-Resource: metric_alert`."""

    action: Literal["critical", "warning", "resolved"]
    data: MetricAlertData


class IssueProject(_Model):
    id: SentryId | None = None
    slug: str = ""
    name: str = ""


class SentryIssue(_Model):
    id: SentryId
    title: str = ""
    culprit: str | None = ""
    level: str | None = ""
    status: str = ""
    short_id: str = Field(default="", alias="shortId")
    first_seen: SourceTime | None = Field(default=None, alias="firstSeen")
    last_seen: SourceTime | None = Field(default=None, alias="lastSeen")
    project: IssueProject = Field(default_factory=IssueProject)
    web_url: str = ""


class IssueData(_Model):
    issue: SentryIssue


class IssuePayload(_Model):
    """`Sentry-Hook-Resource: issue`."""

    action: Literal["created", "resolved", "assigned", "archived", "ignored", "unresolved"]
    data: IssueData


_PROJECT_IN_URL = re.compile(r"/projects/[^/]+/([^/]+)/")
_LEVEL_IN_NAME = re.compile(r"\b(P[1-4]|SEV[1-4])\b", re.I)
_LEADING_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)")
# Sentry aggregate -> signal field (value as Sentry prints it: milliseconds for durations)
_AGGREGATE_SIGNALS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(p95|percentile)\(\s*transaction\.duration", re.I), "p95_latency_ms"),
    (re.compile(r"^p95\(", re.I), "p95_latency_ms"),
    (re.compile(r"^failure_rate\(", re.I), "error_rate_pct"),
)


def project_slug_from_url(url: str) -> str:
    """`"front-end"` from `.../api/0/projects/<org>/front-end/events/<id>/`; `""` when absent."""
    match = _PROJECT_IN_URL.search((url or "")[:2048])  # bounded: a URL is short, a hostile one is cut
    return match.group(1) if match else ""


def _service(slug: str, tags: dict[str, str], ctx: ParseContext) -> str:
    """The configured mapping of the project slug first; then the event's `service` tag, the slug."""
    mapped = ctx.sentry_projects.get(slug) if slug else None
    if ctx.catalogue is None:
        return mapped or tags.get("service") or slug or ctx.default_service
    if mapped:
        return pick_service({}, ctx, given=mapped)
    service_tag = tags.get("service")
    return pick_service({"service": service_tag} if service_tag else {}, ctx, sentry_project=slug)


def _level_from_name(name: str) -> str | None:
    match = _LEVEL_IN_NAME.search(name[:1024])
    return match.group(1).upper() if match else None


def _event_alert(payload: EventAlertPayload, ctx: ParseContext) -> list[Alert]:
    event = payload.data.event
    rule = payload.data.triggered_rule or (payload.data.issue_alert.title if payload.data.issue_alert else "")
    tags = event.tag_map()
    slug = project_slug_from_url(event.url)
    labels: dict[str, str] = {**tags}
    for setting in payload.data.issue_alert.settings if payload.data.issue_alert else []:
        if isinstance(setting.value, str | int | float) and not isinstance(setting.value, bool):
            labels[setting.name] = str(setting.value)
    labels.update(
        {
            "sentry_issue_id": str(event.issue_id),
            "sentry_project": slug,
            "level": event.level or tags.get("level", ""),
        }
    )
    if "severity" not in labels and (level := _level_from_name(rule)):
        labels["severity"] = level
    labels = {k: v for k, v in labels.items() if v != ""}
    annotations = {
        k: v
        for k, v in {
            "summary": event.title,
            "description": event.culprit or "",
            "web_url": event.web_url,
            "release": event.release or "",
        }.items()
        if v
    }
    name = rule or event.title or "Sentry issue alert"
    return [
        Alert(
            source="sentry",
            fingerprint=f"sentry:issue:{event.issue_id}",
            status=AlertStatus.FIRING,
            name=name,
            service=_service(slug, tags, ctx),
            labels=labels,
            annotations=annotations,
            starts_at=parse_time(event.datetime),
            signals=extract_signals(name=name, labels=labels, annotations=annotations),
        )
    ]


def _metric_alert(payload: MetricAlertPayload, ctx: ParseContext) -> list[Alert]:
    incident = payload.data.metric_alert
    rule = incident.alert_rule
    slug = (rule.projects or incident.projects or [""])[0]
    name = rule.name or incident.title or "Sentry metric alert"
    labels = {
        k: v
        for k, v in {
            "sentry_alert_rule_id": str(rule.id),
            "sentry_project": slug,
            "sentry_trigger": payload.action,
            "aggregate": rule.aggregate,
            "dataset": rule.dataset,
            "environment": rule.environment or "",
        }.items()
        if v
    }
    annotations = {
        k: v
        for k, v in {
            "summary": payload.data.description_title,
            "description": payload.data.description_text,
            "web_url": payload.data.web_url,
        }.items()
        if v
    }
    found: dict[str, str] = {}
    value = _LEADING_NUMBER.match(payload.data.description_text or "")
    for pattern, field in _AGGREGATE_SIGNALS:
        if value and pattern.search(rule.aggregate):
            found[field] = value.group(1)
            break
    signals = extract_signals(name=name, labels={**labels, **found}, annotations=annotations)
    if not found and payload.action != "resolved":
        labels["severity"] = _level_from_name(name) or payload.action
    firing = payload.action != "resolved"
    return [
        Alert(
            source="sentry",
            fingerprint=f"sentry:metric_alert:{_as_str(incident.organization_id)}:{incident.id}",
            status=AlertStatus.FIRING if firing else AlertStatus.RESOLVED,
            name=name,
            service=_service(slug, {}, ctx),
            labels=labels,
            annotations=annotations,
            starts_at=parse_time(incident.date_started),
            ends_at=None if firing else parse_time(incident.date_closed),
            signals=signals,
        )
    ]


def _issue(payload: IssuePayload, ctx: ParseContext) -> list[Alert]:
    if payload.action == "assigned":
        return []
    issue = payload.data.issue
    resolved = payload.action in {"resolved", "archived", "ignored"}
    labels = {
        k: v
        for k, v in {
            "sentry_issue_id": str(issue.id),
            "sentry_project": issue.project.slug,
            "sentry_short_id": issue.short_id,
            "level": issue.level or "",
            "sentry_action": payload.action,
        }.items()
        if v
    }
    annotations = {k: v for k, v in {"summary": issue.title, "web_url": issue.web_url}.items() if v}
    name = issue.title or f"Sentry issue {issue.id}"
    return [
        Alert(
            source="sentry",
            fingerprint=f"sentry:issue:{issue.id}",
            status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
            name=name,
            service=_service(issue.project.slug, {}, ctx),
            labels=labels,
            annotations=annotations,
            starts_at=parse_time(issue.first_seen),
            ends_at=parse_time(issue.last_seen) if resolved else None,
            signals=extract_signals(name=name, labels={}, annotations={}),
        )
    ]


def _resource_of(document: Any) -> str:
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, dict):
        for key, resource in (("event", "event_alert"), ("metric_alert", "metric_alert"), ("issue", "issue")):
            if key in data:
                return resource
    return ""


def parse_sentry(document: Any, resource: str | None, ctx: ParseContext) -> list[Alert]:
    """Alerts from one decoded Sentry webhook body; `ValidationError` for a body not of its shape.

    `resource` is the `Sentry-Hook-Resource` header (None or empty: taken from the body's shape).
    `ValueError` for a resource this receiver does not know at all.
    """
    kind = (resource or "").strip().lower() or _resource_of(document)
    if kind in IGNORED_RESOURCES:
        return []
    if kind == "event_alert":
        return _event_alert(EventAlertPayload.model_validate(document), ctx)
    if kind == "metric_alert":
        return _metric_alert(MetricAlertPayload.model_validate(document), ctx)
    if kind == "issue":
        return _issue(IssuePayload.model_validate(document), ctx)
    if not kind:
        raise ValueError(
            "Sentry-Hook-Resource: missing, and the body has none of "
            "data.event, data.metric_alert, data.issue"
        )
    raise ValueError(f"Sentry-Hook-Resource: unsupported resource {kind!r}")
