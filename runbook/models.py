"""The domain nouns: alerts, the signals they carry, incidents and their timeline, actions, runbook results.

Usage::

    from runbook.models import Alert, AlertSource, Incident, IncidentStatus, Signals, next_status

    alert = Alert(source=AlertSource.ALERTMANAGER, fingerprint="a1b2", name="ServiceDown",
                  service="emotionscare", signals=Signals(service_reachable=False))
    next_status(IncidentStatus.TRIGGERED, IncidentStatus.ACKNOWLEDGED)   # ok
    next_status(IncidentStatus.RESOLVED, IncidentStatus.TRIGGERED)       # raises IllegalTransition

Every model is pydantic v2; times are timezone-aware (UTC by convention). Ids are opaque strings
(uuid4 hex) so they travel unchanged through flow parameters, URLs and both store backends.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from runbook.errors import IllegalTransition
from runbook.severity import Severity

__all__ = [
    "DEFAULT_SERVICE",
    "TRANSITIONS",
    "ActionRecord",
    "ActionStatus",
    "Alert",
    "AlertSource",
    "AlertStatus",
    "Evidence",
    "Incident",
    "IncidentRef",
    "IncidentStatus",
    "RunbookOutcome",
    "RunbookResult",
    "Signals",
    "TimelineEntry",
    "action_key",
    "new_id",
    "next_status",
    "utc_now",
]


DEFAULT_SERVICE = "emotionscare"
"""The service a flow started by hand works on when none is named (the settings' single service)."""


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new opaque id (32 hex characters)."""
    return uuid.uuid4().hex


class Signals(BaseModel):
    """What was observed about the service, the inputs of `runbook.severity.classify`. All optional.

    None means "not observed"; a rule only fires on what was observed. Percentages are 0–100.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_rate_pct: float | None = Field(None, ge=0, le=100, description="share of requests failing")
    p95_latency_ms: float | None = Field(None, ge=0, description="95th percentile response time")
    auth_failure_rate_pct: float | None = Field(None, ge=0, le=100, description="share of logins failing")
    service_reachable: bool | None = Field(None, description="the health endpoint answers at all")
    database_reachable: bool | None = Field(None, description="the database accepts connections")
    all_requests_timing_out: bool | None = None
    server_errors_5xx: bool | None = Field(None, description='"Service unavailable (500+ errors)"')
    cpu_pct: float | None = Field(None, ge=0, description="CPU use against its limit")
    memory_pct: float | None = Field(None, ge=0, description="memory use against its limit")
    saturated_for_s: float | None = Field(None, ge=0, description="how long CPU or memory has been at 100%")
    key_integration_down: bool | None = Field(None, description="a key external API (Hume, OpenAI, ...) down")
    major_feature_broken: bool | None = Field(None, description="a major feature broken, no workaround")
    single_feature_broken: bool | None = Field(None, description="one feature/page/edge case, workaround")
    degraded_performance: bool | None = Field(None, description='"Degraded performance" (P3)')
    cosmetic_only: bool | None = None
    warning_only: bool | None = Field(None, description="non-critical warnings only")

    def observed(self) -> dict[str, Any]:
        """Only the signals that were observed (not None), for messages and evidence."""
        return self.model_dump(exclude_none=True)


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertSource(StrEnum):
    ALERTMANAGER = "alertmanager"
    SENTRY = "sentry"
    GRAFANA = "grafana"
    GENERIC = "generic"
    MANUAL = "manual"
    DRILL = "drill"


class Alert(BaseModel):
    """One alert as received and normalised by intake (or raised by hand or by a drill)."""

    id: str = Field(default_factory=new_id)
    source: AlertSource
    fingerprint: str = Field(min_length=1)
    status: AlertStatus = AlertStatus.FIRING
    name: str = Field(min_length=1)
    service: str = "emotionscare"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    signals: Signals = Field(default_factory=Signals)
    raw_ref: str | None = Field(None, description="id of the stored raw payload (Store.save_raw_payload)")
    received_at: AwareDatetime = Field(default_factory=utc_now)

    @property
    def summary(self) -> str:
        """The alert's human summary: its `summary` annotation, else its name."""
        return self.annotations.get("summary") or self.name


class IncidentStatus(StrEnum):
    """triggered → acknowledged → mitigated → resolved (see `TRANSITIONS`)."""

    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"


TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    # Automation may mitigate (roll back) before a person acknowledges, and a service may recover by
    # itself, so forward skips are allowed. Nothing goes backwards; resolved is final (a new alert for
    # the same key opens a new incident).
    IncidentStatus.TRIGGERED: frozenset(
        {IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED, IncidentStatus.RESOLVED}
    ),
    IncidentStatus.ACKNOWLEDGED: frozenset({IncidentStatus.MITIGATED, IncidentStatus.RESOLVED}),
    IncidentStatus.MITIGATED: frozenset({IncidentStatus.RESOLVED}),
    IncidentStatus.RESOLVED: frozenset(),
}
"""Allowed moves. Moving to the current status is a no-op (retries are safe), not a transition."""


def next_status(current: IncidentStatus, requested: IncidentStatus) -> bool:
    """Check a status change: True if it changes the status, False if it is the current one (no-op).

    Raises `IllegalTransition` when `TRANSITIONS` does not allow it.
    """
    if requested == current:
        return False
    if requested not in TRANSITIONS[current]:
        raise IllegalTransition(current.value, requested.value)
    return True


class TimelineEntry(BaseModel):
    """One line of an incident's timeline: who or what did what, when, with evidence."""

    at: AwareDatetime = Field(default_factory=utc_now)
    actor: str = Field(min_length=1, description='"intake", "runbook:service-down", "person:alice"')
    kind: str = Field(min_length=1, description='"alert", "status", "action", "message", "note", ...')
    message: str
    evidence: dict[str, Any] | None = None
    link: str | None = None


class ActionStatus(StrEnum):
    CLAIMED = "claimed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    DRY_RUN = "dry_run"
    SKIPPED = "skipped"


def action_key(incident_id: str, action: str, target: str) -> str:
    """The idempotency key of one action on one target for one incident."""
    return f"{incident_id}:{action}:{target}"


class ActionRecord(BaseModel):
    """A mutating action, recorded (claimed) before it runs, finished after."""

    key: str
    incident_id: str
    action: str = Field(min_length=1, description='"rollback", "scale", "set_env", "escalate", ...')
    target: str = Field(min_length=1, description='"prod/deployment/emotionscare", "slack:@team-lead"')
    status: ActionStatus = ActionStatus.CLAIMED
    claimed_at: AwareDatetime = Field(default_factory=utc_now)
    finished_at: AwareDatetime | None = None
    run_id: str | None = None
    detail: str | None = None


class Incident(BaseModel):
    """One incident: a dedupe key's open episode, from the first alert to resolved."""

    id: str = Field(default_factory=new_id)
    dedupe_key: str = Field(min_length=1)
    title: str
    service: str = "emotionscare"
    severity: Severity
    severity_rule: str = Field(description="the classifier rule id that decided the severity, or 'manual'")
    status: IncidentStatus = IncidentStatus.TRIGGERED
    runbook: str | None = None
    security: bool = Field(False, description="a security incident: escalate to the security contact")
    started_at: AwareDatetime = Field(default_factory=utc_now)
    acknowledged_at: AwareDatetime | None = None
    mitigated_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    alert_count: int = Field(1, ge=0)
    flow_run_id: str | None = None
    slack_thread_ts: str | None = None
    pagerduty_dedup_key: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status != IncidentStatus.RESOLVED


class IncidentRef(BaseModel):
    """The incident a flow works on. Without `incident_id`, the flow opens one (or joins the open one).

    The flows take its fields flat (`service`, `severity`, `summary`, `incident_id`: what a person fills
    in the Prefect UI's form) and build it with `from_form`; a Python caller may pass one whole instead.
    """

    incident_id: str | None = Field(
        None, description="an open incident's id; empty: open one (or join the open one)"
    )
    service: str = Field(DEFAULT_SERVICE, min_length=1, description="the service in trouble")
    severity: Severity = Field(Severity.P1, description="P1 critical · P2 high · P3 medium · P4 low")
    summary: str = Field("", max_length=500, description="what is wrong, in a sentence (shown in Slack)")

    @classmethod
    def from_form(
        cls,
        incident: IncidentRef | None,
        *,
        service: str,
        severity: Severity | str,
        summary: str,
        incident_id: str | None,
        default_summary: str,
    ) -> IncidentRef:
        """The incident a flow run works on: `incident` when a Python caller passed one, else the flow's
        form fields (an empty `incident_id`: open one; an empty `summary`: `default_summary`)."""
        if incident is not None:
            return incident
        return cls(
            incident_id=incident_id or None,
            service=service,
            severity=Severity(severity),
            summary=summary or default_summary,
        )


class RunbookOutcome(StrEnum):
    RECOVERED = "recovered"
    RECOVERED_BY_ITSELF = "recovered_by_itself"
    ROLLED_BACK = "rolled_back"
    MITIGATED = "mitigated"
    ESCALATED = "escalated"
    DRY_RUN = "dry_run"
    FAILED = "failed"


class Evidence(BaseModel):
    """Something collected while responding: a health probe, log lines, metrics, a Sentry issue."""

    kind: str = Field(min_length=1, description='"health", "logs", "metrics", "deploys", "sentry", ...')
    title: str
    content: str = ""
    data: dict[str, Any] | None = None


class RunbookResult(BaseModel):
    """What a runbook flow returns: the outcome, what it did, what it saw."""

    runbook: str
    incident_id: str | None = None
    outcome: RunbookOutcome
    summary: str
    actions: list[ActionRecord] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
