"""What the intake needs to run, as one model: listen address, limits, credentials, routing, dispatch.

Usage::

    config = IntakeConfig.from_settings(load_settings())      # the project's settings (RUNBOOK_INTAKE_...)
    config = IntakeConfig(tokens={"alertmanager": SecretStr("t0ken")})   # tests build it directly

Secrets are `SecretStr` and never printed: `repr(config)` shows `**********`. A source without a
token (or, for Sentry, without a client secret) refuses every request with 401 ("not configured"):
the intake fails closed.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from intake.parsers.common import ParseContext
from intake.triage import KNOWN_RUNBOOKS, Route, Router
from runbook.catalogue import Catalogue, load_catalogue
from runbook.settings import Settings

__all__ = ["DispatchConfig", "IntakeConfig", "RouteConfig"]


class RouteConfig(BaseModel):
    """One configured route: `{"runbook": "database-lost", "name": "pgbouncer", "labels": {"team": "db"}}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runbook: str = Field(min_length=1)
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    signals: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    def route(self) -> Route:
        return Route.build(self.runbook, name=self.name, labels=self.labels, signals=self.signals)


class DispatchConfig(BaseModel):
    """How the dispatcher starts `respond` runs: pace, retries, leases. Times in seconds."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    deployment: str = "respond/respond"
    api_url: str | None = None
    rate_per_s: float = Field(5.0, gt=0)
    burst: int = Field(10, ge=1)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    lease_s: float = Field(10.0, gt=0)
    """A claim's lease; its holder renews it every `lease_renew_s`, so a dead holder's rows are free
    within about this long (intake/lease.py)."""
    lease_renew_s: float = Field(3.0, gt=0)
    """The holder's heartbeat period (at most a third of `lease_s`: `renew_every_s`)."""
    probe_interval_s: float = Field(1.0, gt=0)
    """After an outage, while rows back off: ask the Prefect API's health this often (intake/drain.py)."""
    probe_timeout_s: float = Field(2.0, gt=0)
    drain_burst: int = Field(200, ge=1)
    """When the backlog is released after an outage, the token bucket is topped up to its size (at most
    this many): the drain goes at the server's pace, one creation at a time, not at `rate_per_s`."""
    concurrency: int = Field(1, ge=1, le=32)
    """Creations in flight at once (from one claimed batch, in its order); the bucket still paces them.
    1 for a SQLite-backed Prefect server (concurrent writes answer 503 `database is locked`); a
    PostgreSQL-backed one takes more."""
    idle_poll_s: float = Field(1.0, gt=0)
    batch: int = Field(20, ge=1)
    request_timeout_s: float = Field(10.0, gt=0)
    client_max_retries: int = Field(0, ge=0, le=10)
    """Prefect client's own retries per call; ours (backoff above) do the rest, without holding a row."""

    @property
    def renew_every_s(self) -> float:
        """The heartbeat's period: `lease_renew_s`, at most a third of the lease (at least 50 ms)."""
        return max(0.05, min(self.lease_renew_s, self.lease_s / 3))


class IntakeConfig(BaseModel):
    """Everything `create_app` and `python -m intake` take."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8088, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_alerts_per_request: int = Field(1000, ge=1)
    body_timeout_s: float = Field(10.0, gt=0)
    """The whole body must arrive within this many seconds of the handler starting to read it (else 408)."""
    parse_threads: int = Field(2, ge=1, le=64)
    """Requests decoded and validated at once, in worker threads (never on the event loop)."""
    batch_decode_max_bytes: int = Field(16_384, ge=0)
    """A body of at most this size is decoded in the group commit's writer thread, just before its batch
    is stored (one thread hop fewer per request); larger ones in the `parse_threads`. 0: never."""
    sentry_timestamp_window_s: float = Field(300.0, gt=0)
    """`Sentry-Hook-Timestamp` (unix seconds) more than this far from now, or missing: 401."""
    tokens: dict[str, SecretStr] = Field(default_factory=dict)
    """Bearer token per source: `alertmanager`, `grafana`, `generic` (and `sentry`, as an alternative)."""
    sentry_client_secret: SecretStr | None = None
    """The Sentry integration's Client Secret: `Sentry-Hook-Signature` is HMAC-SHA256 of the body with it."""
    default_service: str = "emotionscare"
    """Without a catalogue only (a config built by hand): the service of an alert that names none."""
    service_labels: tuple[str, ...] = ("service", "app", "app_kubernetes_io_name")
    """Without a catalogue only: the labels naming an alert's service (with one: intake/services.py)."""
    sentry_projects: dict[str, str] = Field(default_factory=dict)
    """Sentry project slug -> service name."""
    routes: tuple[RouteConfig, ...] = ()
    known_runbooks: frozenset[str] = KNOWN_RUNBOOKS
    catalogue: Catalogue | None = None
    """The service catalogue alerts are resolved through (intake/services.py); `from_settings` loads and
    validates it (`RUNBOOK_CATALOGUE`, else the settings as a catalogue of one). None: services as the
    labels name them, `default_service` for none."""
    store_url: str | None = None
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)

    def parse_context(self) -> ParseContext:
        return ParseContext(
            default_service=self.default_service,
            service_labels=self.service_labels,
            sentry_projects=dict(self.sentry_projects),
            max_alerts=self.max_alerts_per_request,
            catalogue=self.catalogue,
        )

    def router(self) -> Router:
        return Router(routes=tuple(r.route() for r in self.routes), known=self.known_runbooks)

    @classmethod
    def from_settings(cls, settings: Any) -> IntakeConfig:
        """From the project's `runbook.settings.Settings` (groups `intake`, `prefect`, `store`).

        Fields the settings do not have keep this model's defaults, so the two can grow apart safely.
        The catalogue is loaded and validated here: an invalid one raises `CatalogueError` (a
        `SettingsError`, one line naming the service and field), so the intake refuses to start.
        """
        intake = getattr(settings, "intake", None)
        prefect = getattr(settings, "prefect", None)
        store = getattr(settings, "store", None)
        values: dict[str, Any] = {}
        for name in (
            "host",
            "port",
            "workers",
            "max_body_bytes",
            "max_alerts_per_request",
            "body_timeout_s",
            "parse_threads",
            "sentry_timestamp_window_s",
            "default_service",
            "service_labels",
            "sentry_projects",
            "routes",
            "sentry_client_secret",
        ):
            value = getattr(intake, name, None)
            if value is not None:
                values[name] = value
        values["tokens"] = dict(getattr(intake, "tokens", None) or {})
        runbooks = getattr(prefect, "runbook_deployments", None)
        if runbooks:
            values["known_runbooks"] = KNOWN_RUNBOOKS | frozenset(runbooks)
        service_name = getattr(getattr(settings, "service", None), "name", None)
        if "default_service" not in values and service_name:
            values["default_service"] = service_name
        if isinstance(settings, Settings):
            values["catalogue"] = load_catalogue(settings)
        url = getattr(store, "url", None) or getattr(store, "dsn", None)
        if url is not None:
            values["store_url"] = url.get_secret_value() if isinstance(url, SecretStr) else str(url)
        dispatch: dict[str, Any] = {}
        deployment = getattr(prefect, "respond_deployment", None)
        if deployment:
            dispatch["deployment"] = deployment
        api_url = getattr(prefect, "api_url", None)
        if api_url:
            dispatch["api_url"] = str(api_url)
        for name in DispatchConfig.model_fields:
            value = getattr(intake, f"dispatch_{name}", None)
            if value is not None:
                dispatch[name] = value
        values["dispatch"] = DispatchConfig(**dispatch)
        return cls(**values)
