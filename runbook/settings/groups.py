"""The settings groups: one model per part of the world the runbooks reach (the service, Kubernetes,
its database, external APIs, Slack, PagerDuty, Sentry, the store, deploys, intake, Prefect, timings)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_serializer,
    field_validator,
)

from runbook.settings.fields import (
    Channel,
    Email,
    EnvFlag,
    Group,
    Handle,
    HttpUrl,
    K8sName,
    UrlPath,
    http_url,
    mask_url,
)
from runbook.switch import Mode

__all__ = [
    "AutomationSettings",
    "DatabaseSettings",
    "DeploySettings",
    "ExternalApi",
    "IntakeSettings",
    "KubernetesSettings",
    "PagerDutySettings",
    "PrefectSettings",
    "ResponseSettings",
    "SafetySettings",
    "SentrySettings",
    "ServiceSettings",
    "SlackSettings",
    "StoreSettings",
]


class ServiceSettings(Group):
    """The service under care (guide: `curl https://emotionscare.com/health`, `/api/health`, ...)."""

    name: str = Field("emotionscare", min_length=1, description="the service's name in alerts and messages")
    base_url: HttpUrl = Field("https://emotionscare.com", description="where its HTTP endpoints answer")
    health_path: UrlPath = Field("/health", description="infrastructure health: timeout/refused → infra")
    api_health_path: UrlPath = Field("/api/health", description="application health: 500 → app issue")
    reset_pool_path: UrlPath = Field("/admin/reset-db-pool", description="resets its database pool")
    notifications_path: UrlPath = Field("/api/notifications", description="POST user notifications here")
    http_timeout_s: float = Field(5.0, gt=0, le=120, description="timeout of every call to the service")
    admin_token: SecretStr | None = Field(None, description="bearer token for the /admin endpoints")


class KubernetesSettings(Group):
    """Where the service runs (guide: `kubectl ... -n prod deployment/emotionscare`)."""

    namespace: K8sName = Field("prod", description="namespace of the service's Deployment")
    deployment: K8sName = Field("emotionscare", description="the service's Deployment")
    container: str | None = Field(None, description="container for logs/env (default: the first one)")
    api_url: str | None = Field(None, description="API server URL used directly (the sandbox emulator)")
    kubeconfig: Path | None = Field(None, description="kubeconfig file (default: the client's own lookup)")
    context: str | None = Field(None, description="kubeconfig context to use")
    in_cluster: bool = Field(False, description="use the pod's service account (running inside the cluster)")
    token: SecretStr | None = Field(None, description="bearer token, with api_url")
    verify_ssl: bool = Field(True, description="verify the API server's TLS certificate")
    request_timeout_s: float = Field(10.0, gt=0, le=300, description="timeout of every API request")

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)


class DatabaseSettings(Group):
    """The service's database (guide: `psql -h $DB_HOST -U $DB_USER -d emotionscare -c "SELECT 1"`)."""

    dsn: SecretStr | None = Field(None, description="PostgreSQL DSN of the service's database")
    connect_timeout_s: float = Field(5.0, gt=0, le=120, description="timeout of the connectivity check")
    pool_size_env: str = Field("DB_POOL_SIZE", min_length=1, description="env var holding the pool size")
    recovery_pool_size: int = Field(10, ge=1, le=1000, description="pool size set during recovery")
    supabase_project_ref: str | None = Field(None, description="Supabase project (hosted database)")
    supabase_token: SecretStr | None = Field(None, description="Supabase management API token")
    supabase_api_url: HttpUrl = Field("https://api.supabase.com", description="Supabase management API")


class ExternalApi(Group):
    """One external API the service depends on, and the feature flag that switches off what needs it."""

    name: str = Field(min_length=1, description="hume, openai, spotify, ...")
    health_url: HttpUrl = Field(description="probed to tell whether the API is up")
    feature_flag: EnvFlag = Field(description="env var of the service that enables the feature")
    feature: str = Field(min_length=1, description="feature named in the user notification")
    method: Literal["GET", "HEAD", "POST"] = "GET"
    token: SecretStr | None = None


def default_apis() -> list[ExternalApi]:
    # Guide: External API Failure (Hume, OpenAI, Spotify).
    return [
        ExternalApi(
            name="hume",
            health_url="https://api.hume.ai/health",
            feature_flag="FEATURE_MUSIC_GENERATION_ENABLED",
            feature="music",
        ),
        ExternalApi(
            name="openai",
            health_url="https://api.openai.com/v1/models",
            feature_flag="FEATURE_AI_COACH_ENABLED",
            feature="coach",
        ),
        ExternalApi(
            name="spotify",
            health_url="https://api.spotify.com/v1/me",
            feature_flag="FEATURE_MUSIC_PLAYBACK_ENABLED",
            feature="playlists",
        ),
    ]


class SlackSettings(Group):
    """Slack Web API, channels and the escalation contacts (guide: Escalation Contacts)."""

    api_url: HttpUrl = Field("https://slack.com/api", description="Slack Web API base URL")
    token: SecretStr | None = Field(None, description="bot token (xoxb-...); unset: messages undelivered")
    alerts_channel: Channel = Field("#alerts-critical", description="where alerts are acknowledged")
    incidents_channel: Channel = Field("#incidents", description="where the incident thread lives")
    devops_channel: Channel = Field("#devops", description="DevOps/Infrastructure (tertiary contact)")
    oncall_handle: Handle = Field("@on-call", description="on-call engineer (primary contact)")
    lead_handle: Handle = Field("@team-lead", description="team lead (secondary contact)")
    security_handle: Handle = Field("@security", description="security team (security incidents)")
    security_email: Email = Field("security@emotionscare.com", description="security team's email")
    timeout_s: float = Field(10.0, gt=0, le=120, description="timeout of every Slack call")


class PagerDutySettings(Group):
    """PagerDuty Events API v2 (P1 pages)."""

    events_url: HttpUrl = Field("https://events.pagerduty.com/v2/enqueue", description="Events API v2")
    routing_key: SecretStr | None = Field(None, description="integration key; unset: pages undelivered")
    timeout_s: float = Field(10.0, gt=0, le=120, description="timeout of every PagerDuty call")


class SentrySettings(Group):
    """Sentry API (guide: Open Sentry dashboard; `curl https://sentry.io/api/0/projects/...`)."""

    api_url: HttpUrl = Field("https://sentry.io/api/0", description="Sentry API base URL")
    org: str = Field("emotionscare", min_length=1, description="organisation slug")
    project: str = Field("emotionscare", min_length=1, description="project slug")
    token: SecretStr | None = Field(None, description="auth token (Bearer)")
    timeout_s: float = Field(10.0, gt=0, le=120, description="timeout of every Sentry call")


class StoreSettings(Group):
    """The incident store: a SQLite file by default, PostgreSQL when a DSN is given."""

    url: str = Field(
        "sqlite:///var/incidents.sqlite3",
        description="sqlite:///path (relative to the working directory) or postgresql://user:pw@host/db",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
            return value
        if value.split("://", 1)[0] in ("postgresql", "postgres") and "://" in value:
            return value
        raise ValueError(f"must be sqlite:///path or postgresql://... (got {mask_url(value)!r})")

    @field_serializer("url")
    def _masked(self, value: str) -> str:
        return mask_url(value)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "url", mask_url(self.url)


class DeploySettings(Group):
    """Recent deployments (guide: `git log --oneline -5`; "deployed in last 15 min → ROLLBACK")."""

    repo_path: Path | None = Field(None, description="git repository of the service, for the last commits")
    rollback_window_min: int = Field(15, ge=1, le=24 * 60, description="a deploy this recent is rolled back")


class IntakeSettings(Group):
    """The alert receiver (`python -m intake`)."""

    host: str = Field("127.0.0.1", min_length=1, description="address to listen on")
    port: int = Field(8088, ge=0, le=65535, description="port to listen on (0: any free port)")
    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576, description="larger bodies get 413")
    tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description='bearer token per source, JSON: {"alertmanager": "..."}'
    )
    sentry_client_secret: SecretStr | None = Field(None, description="verifies Sentry-Hook-Signature")
    workers: int = Field(1, ge=1, le=64, description="server worker processes")
    max_alerts_per_request: int = Field(
        1000, ge=1, le=100_000, description="more alerts in one request get 422, counted before any is parsed"
    )
    body_timeout_s: float = Field(
        10.0, gt=0, le=600, description="the whole body must arrive within this many seconds, else 408"
    )
    parse_threads: int = Field(
        2, ge=1, le=64, description="requests decoded and validated at once, in worker threads"
    )
    sentry_timestamp_window_s: float = Field(
        300.0, gt=0, le=86_400, description="Sentry-Hook-Timestamp further than this from now: 401"
    )

    @property
    def loopback_only(self) -> bool:
        """True when the intake listens on a loopback address only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def _default_runbooks() -> dict[str, str]:
    return {
        "service-down": "service-down/service-down",
        "database-lost": "database-lost/database-lost",
        "resource-exhaustion": "resource-exhaustion/resource-exhaustion",
        "external-api-failure": "external-api-failure/external-api-failure",
    }


class PrefectSettings(Group):
    """Which Prefect deployments intake and `respond` start (`flow-name/deployment-name`)."""

    respond_deployment: str = Field(
        "respond/respond", description="the deployment intake starts per incident"
    )
    runbook_deployments: dict[str, str] = Field(
        default_factory=_default_runbooks, description="runbook name → its deployment, JSON"
    )
    postmortem_deployment: str = Field(
        "postmortem/postmortem", description="the deployment respond starts once an incident is resolved"
    )

    @field_validator("respond_deployment", "postmortem_deployment")
    @classmethod
    def _slash(cls, value: str) -> str:
        if value.count("/") != 1 or value.startswith("/") or value.endswith("/"):
            raise ValueError(f"must be 'flow-name/deployment-name' (got {value!r})")
        return value


class ResponseSettings(Group):
    """Timings of the response, the guide's values by default."""

    status_update_interval_min: int = Field(5, ge=5, le=10, description="status updates every 5-10 minutes")
    fix_time_limit_min: float = Field(
        5.0, gt=0, le=60, description="decision matrix: fix if < this, else roll back"
    )
    settle_s: float = Field(
        30.0, ge=0, le=600, description='wait after a rollback before verifying ("sleep 30")'
    )
    poll_interval_s: float = Field(30.0, gt=0, le=600, description="external API recovery poll interval")
    rollout_deadline_s: float = Field(
        300.0, gt=0, le=3600, description="wait at most this for pods to be ready"
    )
    api_recovery_deadline_min: float = Field(60.0, gt=0, le=24 * 60, description="poll a down API this long")
    related_window_min: float = Field(
        10.0,
        ge=0,
        le=24 * 60,
        description="an incident opened this soon after an open one of the same service and the same or "
        "a higher level follows that one's response (0: never link)",
    )


class AutomationSettings(Group):
    """The automation switch's defaults (docs/safety.md); people flip it at run time with a Prefect Variable."""

    mode: Mode = Field(
        Mode.AUTO,
        description="the switch when its Prefect Variable is unset: auto, approve (a person says yes first), "
        "observe (plan only)",
    )
    approval_timeout_s: int = Field(
        600,
        ge=1,
        le=24 * 3600,
        description="in approve mode, wait this long for a yes; then escalate, not act",
    )


class SafetySettings(Group):
    """Guards across incidents (docs/safety.md): one remediation per target at a time, a budget per target,
    undo what made it worse."""

    lease_ttl_s: float = Field(
        120.0,
        ge=5,
        le=3600,
        description="a target's lease lasts this long unless renewed (a crashed holder blocks no longer)",
    )
    lease_wait_s: float = Field(
        300.0, ge=0, le=3600, description="wait at most this for a target another remediation holds"
    )
    lease_poll_s: float = Field(
        1.0, gt=0, le=60, description="how often a waiting runbook looks at the lease"
    )
    budget_window_min: float = Field(
        60.0, gt=0, le=7 * 24 * 60, description="the budget per target counts changes in this window"
    )
    budget_rollbacks: int = Field(2, ge=0, le=100, description="automated rollbacks per target per window")
    budget_scale_ups: int = Field(3, ge=0, le=100, description="automated scale-ups per target per window")
    budget_pool_resets: int = Field(
        3, ge=0, le=100, description="automated database pool resets per target per window"
    )
    budget_approval_timeout_s: int = Field(
        600, ge=1, le=24 * 3600, description="over budget, wait this long for a person's yes; then escalate"
    )
