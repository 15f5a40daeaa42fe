"""The catalogue's model: `Catalogue` (its services), `Service` and the parts of one service (Kubernetes,
health, database, external APIs, Slack, PagerDuty, escalation, timings), and `SecretRef`, the only way a
secret is written in the file (`{env: VAR}` or `{file: /path}`, never inline).

Every model forbids unknown fields, so a misspelt key is an error, not a silently ignored default. The
checks that span services (a name or alias used twice, one Deployment catalogued twice) are on
`Catalogue`; their message names the service and field itself, one line per problem."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from runbook.errors import SettingsError
from runbook.settings.fields import (
    Channel,
    Email,
    EnvFlag,
    Handle,
    HttpUrl,
    K8sName,
    UrlPath,
    http_url,
    unique_names,
)

__all__ = [
    "IN_CLUSTER",
    "Catalogue",
    "CatalogueApi",
    "Escalation",
    "Health",
    "Kubernetes",
    "PagerDuty",
    "Replicas",
    "SecretRef",
    "Service",
    "ServiceDatabase",
    "Slack",
    "Timings",
]

IN_CLUSTER = "in-cluster"
"""`kubernetes.cluster` value meaning: the pod's own service account (running inside the cluster)."""

INLINE_SECRET = "write it by reference ({env: VAR} or {file: PATH}), not inline"

_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SERVICE_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


def _not_inline(value: Any) -> Any:
    if isinstance(value, str | bytes | int | float):
        raise ValueError(INLINE_SECRET)  # the value itself is never echoed: it may be the secret
    return value


class SecretRef(Part):
    """Where a secret is: the environment variable `env` or the file `file` (exactly one of them)."""

    env: str | None = Field(None, description="environment variable holding the secret")
    file: Path | None = Field(None, description="absolute path of a file holding it (a mounted secret)")
    _value: SecretStr | None = PrivateAttr(None)

    @field_validator("env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_VAR.match(value):
            raise ValueError(f"must be an environment variable name (got {value!r})")
        return value

    @field_validator("file")
    @classmethod
    def _file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"must be an absolute path (got {str(value)!r})")
        return value

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self

    @classmethod
    def holding(cls, setting: str, value: SecretStr) -> SecretRef:
        """A reference to the setting `setting` (`RUNBOOK_DATABASE_DSN`, `RUNBOOK_EXTERNAL_APIS[0].token`)
        holding `value`, as the settings read it (from the environment, `.env` or `RUNBOOK_CONFIG`)."""
        ref = cls.model_construct(env=setting, file=None)
        ref._value = value
        return ref

    def read(self) -> SecretStr | None:
        """The secret, read now; None when the variable is unset. A missing file raises SettingsError."""
        if self._value is not None:
            return self._value
        if self.env is not None:
            raw = os.environ.get(self.env)
            return None if raw is None else SecretStr(raw)
        if self.file is None:  # the model's validator allows exactly one of the two
            raise ValueError("a secret reference names neither an env variable nor a file")
        try:
            return SecretStr(self.file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise SettingsError(f"secret file {self.file}: {exc.strerror or exc}") from exc

    def __str__(self) -> str:
        return f"{{env: {self.env}}}" if self.env is not None else f"{{file: {self.file}}}"


Secret = Annotated[SecretRef, BeforeValidator(_not_inline)]


def _cluster(value: str | None) -> str | None:
    if value is None or value == IN_CLUSTER:
        return value
    if "://" in value:
        return http_url(value)
    if not value.strip() or any(c.isspace() for c in value):
        raise ValueError(
            f"must be a kubeconfig context, {IN_CLUSTER!r} or an http(s) API URL (got {value!r})"
        )
    return value


class Replicas(Part):
    """How far scaling may go (resource exhaustion scales up, never past `max`)."""

    min: int = Field(1, ge=0, le=1000, description="fewest replicas the runbooks leave running")
    max: int = Field(10, ge=1, le=1000, description="most replicas the runbooks scale to")

    @model_validator(mode="after")
    def _sane(self) -> Replicas:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class Kubernetes(Part):
    """Where the service runs: which cluster, namespace, Deployment and container."""

    cluster: Annotated[str | None, AfterValidator(_cluster)] = Field(
        None,
        description=f"kubeconfig context, {IN_CLUSTER!r}, or an API URL (the sandbox); unset: the settings' "
        "cluster",
    )
    namespace: K8sName = Field(description="namespace of the service's Deployment")
    deployment: K8sName = Field(description="the service's Deployment")
    container: str | None = Field(None, description="container for logs/env (unset: the first one)")
    replicas: Replicas = Field(default_factory=Replicas, description="bounds for scaling")

    @property
    def cluster_kind(self) -> Literal["current-context", "context", "in-cluster", "api-url"]:
        """How the cluster is reached: the kubeconfig's current context, a named one, in-cluster or a URL."""
        if self.cluster is None:
            return "current-context"
        if self.cluster == IN_CLUSTER:
            return "in-cluster"
        return "api-url" if "://" in self.cluster else "context"


class Health(Part):
    """Where the service answers (guide: `curl https://emotionscare.com/health`, `/api/health`)."""

    base_url: HttpUrl = Field(description="where its HTTP endpoints answer")
    health_path: UrlPath = Field("/health", description="infrastructure health: timeout/refused → infra")
    api_health_path: UrlPath = Field("/api/health", description="application health: 500 → app issue")


class ServiceDatabase(Part):
    """The service's database; its DSN by reference only."""

    dsn: Secret = Field(description="PostgreSQL DSN: {env: VAR} or {file: PATH}")


class CatalogueApi(Part):
    """One external API the service depends on, and the feature flag that switches off what needs it."""

    name: str = Field(min_length=1, description="hume, openai, spotify, ...")
    health_url: HttpUrl = Field(description="probed to tell whether the API is up")
    feature_flag: EnvFlag = Field(description="env var of the service that enables the feature")
    feature: str = Field(min_length=1, description="feature named in the user notification")
    method: Literal["GET", "HEAD", "POST"] = Field("GET", description="method of the health probe")
    token: Secret | None = Field(None, description="bearer token of the probe, by reference")


class Slack(Part):
    """The service's Slack channels (the bot token is global: `RUNBOOK_SLACK_TOKEN`)."""

    alerts_channel: Channel = Field("#alerts-critical", description="where its alerts are acknowledged")
    incidents_channel: Channel = Field("#incidents", description="where its incident threads live")


class PagerDuty(Part):
    """The service's PagerDuty integration (P1 pages)."""

    routing_key: Secret | None = Field(None, description="Events API v2 key, by reference; unset: not paged")


class Escalation(Part):
    """The guide's chain for this service: on-call, lead, DevOps, and security for security incidents."""

    oncall: Handle = Field("@on-call", description="on-call engineer (primary)")
    lead: Handle = Field("@team-lead", description="team lead (secondary)")
    devops: Channel = Field("#devops", description="DevOps/Infrastructure (tertiary)")
    security: Handle = Field("@security", description="security team (security incidents)")
    security_email: Email = Field("security@emotionscare.com", description="security team's email")


class Timings(Part):
    """The guide's timings this service overrides (unset: `RUNBOOK_RESPONSE_*`, the guide's values)."""

    status_update_interval_min: int | None = Field(None, ge=5, le=10, description="status update interval")
    fix_time_limit_min: float | None = Field(None, gt=0, le=60, description="fix if < this, else roll back")
    settle_s: float | None = Field(None, ge=0, le=600, description="wait after a rollback before verifying")
    poll_interval_s: float | None = Field(None, gt=0, le=600, description="external API recovery poll")
    rollout_deadline_s: float | None = Field(None, gt=0, le=3600, description="wait at most this for pods")
    api_recovery_deadline_min: float | None = Field(None, gt=0, le=24 * 60, description="poll a down API")
    related_window_min: float | None = Field(
        None, ge=0, le=24 * 60, description="link a new incident to an open one this recent (0: never)"
    )


def _service_name(value: str) -> str:
    if not _SERVICE_NAME.match(value):
        raise ValueError(f"must be lower-case letters, digits, '.', '_' or '-' (got {value!r})")
    return value


def _alias(value: str) -> str:
    if not value.strip() or value != value.strip():
        raise ValueError(f"must be a non-blank label value without surrounding spaces (got {value!r})")
    return value


class Service(Part):
    """One service under care: how alerts name it, who owns it, where it runs and who to call."""

    name: Annotated[str, AfterValidator(_service_name)] = Field(
        description="the service's name: lower-case letters, digits, '.', '_', '-'"
    )
    aliases: list[Annotated[str, AfterValidator(_alias)]] = Field(
        default_factory=list,
        description="other names alerts use for it: label values, Sentry projects, Grafana folders",
    )
    team: str = Field(min_length=1, description="owning team")
    customer_facing: bool = Field(True, description="its users see it fail (false: an internal service)")
    kubernetes: Kubernetes = Field(description="where it runs")
    health: Health = Field(description="its health endpoints")
    database: ServiceDatabase | None = Field(None, description="its database, if it has one")
    external_apis: list[CatalogueApi] = Field(default_factory=list, description="APIs it depends on")
    slack: Slack = Field(default_factory=Slack, description="its Slack channels")
    pagerduty: PagerDuty = Field(default_factory=PagerDuty, description="its PagerDuty routing")
    escalation: Escalation = Field(default_factory=Escalation, description="who to call, in order")
    rollback_window_min: int = Field(15, ge=1, le=24 * 60, description="a deploy this recent is rolled back")
    timings: Timings = Field(default_factory=Timings, description="the guide's timings it overrides")

    @property
    def names(self) -> tuple[str, ...]:
        """Its name, then its aliases: every value an alert may use for it."""
        return (self.name, *self.aliases)

    @field_validator("external_apis")
    @classmethod
    def _unique_apis(cls, apis: list[CatalogueApi]) -> list[CatalogueApi]:
        unique_names(apis)
        return apis

    def api(self, name: str) -> CatalogueApi:
        """Its external API called `name` (KeyError naming the known ones otherwise)."""
        for api in self.external_apis:
            if api.name == name:
                return api
        raise KeyError(
            f"{self.name} has no external API {name!r}; known: {[a.name for a in self.external_apis]}"
        )


def _key(value: str) -> str:
    return value.casefold()


class Catalogue(Part):
    """Every service under care. Names and aliases are unique across services (case-insensitively)."""

    services: list[Service] = Field(min_length=1, description="the services, at least one")
    _index: dict[str, Service] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        problems = _conflicts(self.services)
        if problems:
            raise ValueError("\n".join(problems))  # one line per problem; each names its service and field
        self._index = {_key(value): service for service in self.services for value in service.names}
        return self

    def find(self, value: str) -> Service | None:
        """The service whose name or alias is `value` (case-insensitive), else None."""
        return self._index.get(_key(value))

    def service(self, name: str) -> Service:
        """The service named (or aliased) `name`; KeyError naming the known ones otherwise."""
        found = self.find(name)
        if found is None:
            raise KeyError(f"no service {name!r} in the catalogue; known: {', '.join(self.names)}")
        return found

    @property
    def names(self) -> list[str]:
        """The services' names, in catalogue order."""
        return [service.name for service in self.services]


def _conflicts(services: list[Service]) -> list[str]:
    problems: list[str] = []
    owner: dict[str, tuple[int, str]] = {}  # key → (index of the service, "name" or "aliases")
    twice: set[frozenset[int]] = set()
    for i, service in enumerate(services):
        for field, value in [("name", service.name)] + [("aliases", a) for a in service.aliases]:
            seen = owner.get(_key(value))
            if seen is None:
                owner[_key(value)] = (i, field)
                continue
            j, other_field = seen
            pair = frozenset((i, j))
            if j == i or pair in twice:
                continue
            other = services[j].name
            if field == "name" and other_field == "name":
                twice.add(pair)
                problems.append(f"{service.name}.name: the service is listed twice (services {j} and {i})")
            else:
                what = "name" if other_field == "name" else "alias"
                problems.append(f"{service.name}.{field}: {value!r} is already {other}'s {what}")
    places: dict[tuple[str | None, str, str], str] = {}
    for service in services:
        k8s = service.kubernetes
        place = (k8s.cluster, k8s.namespace, k8s.deployment)
        if place in places and places[place] != service.name:
            problems.append(
                f"{service.name}.kubernetes: deployment {k8s.namespace}/{k8s.deployment} on the same "
                f"cluster is already {places[place]}'s"
            )
        places.setdefault(place, service.name)
    return problems
