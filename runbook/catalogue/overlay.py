"""One service's view of the settings: `settings_for(settings, service)` (the process settings with that
service's target overlaid from the catalogue) and `unbound(settings)` (the settings with every
service-specific group made to refuse use, for code running with no service bound).

Usage::

    view = settings_for(settings, catalogue.service("payments"))
    view.kubernetes.namespace, view.service.base_url, view.database.dsn, view.slack.incidents_channel

Why a view rather than rewriting every reader: the runbooks read their target through
`tasks.runtime.settings()` in ~50 places (probes, Kubernetes, database, external APIs, Slack channels,
PagerDuty key, contacts, timings). The view carries the bound service's values in those same fields, so
each reader gets the incident's service without knowing there is a catalogue, and the process-wide parts
(the store, Prefect, intake, the automation switch, Slack's token and API URL, Sentry's API) stay shared.

What the overlay sets, from the catalogue's `Service` (everything else keeps the process settings' value):

| settings | from the service |
|---|---|
| `service.name`, `base_url`, `health_path`, `api_health_path` | `name`, `health.*` |
| `kubernetes.namespace`, `deployment`, `container`; the cluster | `kubernetes.*` (see below) |
| `database.dsn` | `database.dsn` read now; no database: unset (no check runs) |
| `external_apis` | `external_apis` (tokens read now) |
| `slack.alerts_channel`, `incidents_channel`, contacts | `slack.*`, `escalation.*` |
| `pagerduty.routing_key` | `pagerduty.routing_key` read now; unset: not paged (recorded as undelivered) |
| `sentry.project` | the settings' project when it is one of the service's names, else the service's name |
| `deploys.rollback_window_min` (`repo_path` only for the settings' own service) | `rollback_window_min` |
| `response.*` | `timings.*` that are set |

The cluster: `kubernetes.cluster` unset keeps the settings' connection (`RUNBOOK_KUBERNETES_API_URL`,
`..._CONTEXT`, in-cluster, else the kubeconfig's current context); a context name selects that context of
the settings' kubeconfig file; an URL is used directly; `in-cluster` is the pod's service account. The
settings' bearer token goes only with the settings' own cluster (a token for one cluster is never sent to
another).
"""

from __future__ import annotations

from typing import Any, NoReturn

from runbook.catalogue.model import Service
from runbook.errors import RunbookError
from runbook.settings import ExternalApi, KubernetesSettings, Settings

__all__ = ["SERVICE_GROUPS", "NoServiceBound", "settings_for", "unbound"]

SERVICE_GROUPS = ("service", "kubernetes", "database", "external_apis")
"""The settings groups that name a service's target: unusable while no service is bound."""


class NoServiceBound(RunbookError):
    """Service-specific settings were read with no service bound, and the catalogue has several: acting on
    any one of them would be a guess (the incident names its service; bind it: `tasks.runtime.bound`)."""


class _Unbound:
    """Stands in for a service-specific settings group while no service is bound: any use raises."""

    def __init__(self, group: str, why: str) -> None:
        self._group = group
        self._why = why

    def _refuse(self) -> NoReturn:
        raise NoServiceBound(f"settings.{self._group} read with no service bound: {self._why}")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse()

    def __iter__(self) -> Any:
        self._refuse()

    def __len__(self) -> int:
        self._refuse()

    def __bool__(self) -> bool:
        self._refuse()

    def __repr__(self) -> str:
        return f"<{self._group}: no service bound>"


def unbound(settings: Settings, why: str) -> Settings:
    """`settings` with `SERVICE_GROUPS` replaced by stand-ins that raise `NoServiceBound(why)` when used."""
    return settings.model_copy(update={group: _Unbound(group, why) for group in SERVICE_GROUPS})


def _cluster(settings: Settings, service: Service) -> KubernetesSettings:
    k8s = settings.kubernetes
    own = {
        "namespace": service.kubernetes.namespace,
        "deployment": service.kubernetes.deployment,
        "container": service.kubernetes.container,
    }
    kind, cluster = service.kubernetes.cluster_kind, service.kubernetes.cluster
    if kind == "current-context":
        return k8s.model_copy(update=own)
    same = (
        (kind == "in-cluster" and k8s.in_cluster)
        or (kind == "api-url" and not k8s.in_cluster and k8s.api_url == cluster)
        or (kind == "context" and not k8s.in_cluster and not k8s.api_url and k8s.context == cluster)
    )
    where = {
        "in_cluster": kind == "in-cluster",
        "api_url": cluster if kind == "api-url" else None,
        "context": cluster if kind == "context" else None,
        "token": k8s.token if same else None,
    }
    return k8s.model_copy(update={**own, **where})


def settings_for(settings: Settings, service: Service) -> Settings:
    """The settings as `service` sees them (the module docstring's table). Secrets are read here."""
    own = settings.service.name in service.names
    apis = [
        ExternalApi.model_construct(
            name=api.name,
            health_url=api.health_url,
            feature_flag=api.feature_flag,
            feature=api.feature,
            method=api.method,
            token=None if api.token is None else api.token.read(),
        )
        for api in service.external_apis
    ]
    esc = service.escalation
    pd_key = service.pagerduty.routing_key
    timings = {k: v for k, v in service.timings.model_dump().items() if v is not None}
    update = {
        "service": settings.service.model_copy(
            update={
                "name": service.name,
                "base_url": service.health.base_url,
                "health_path": service.health.health_path,
                "api_health_path": service.health.api_health_path,
            }
        ),
        "kubernetes": _cluster(settings, service),
        "database": settings.database.model_copy(
            update={"dsn": None if service.database is None else service.database.dsn.read()}
        ),
        "external_apis": apis,
        "slack": settings.slack.model_copy(
            update={
                "alerts_channel": service.slack.alerts_channel,
                "incidents_channel": service.slack.incidents_channel,
                "oncall_handle": esc.oncall,
                "lead_handle": esc.lead,
                "devops_channel": esc.devops,
                "security_handle": esc.security,
                "security_email": esc.security_email,
            }
        ),
        "pagerduty": settings.pagerduty.model_copy(
            update={"routing_key": None if pd_key is None else pd_key.read()}
        ),
        "sentry": settings.sentry.model_copy(
            update={
                "project": settings.sentry.project
                if settings.sentry.project in service.names
                else service.name
            }
        ),
        "deploys": settings.deploys.model_copy(
            update={
                "rollback_window_min": service.rollback_window_min,
                "repo_path": settings.deploys.repo_path if own else None,
            }
        ),
        "response": settings.response.model_copy(update=timings),
    }
    return settings.model_copy(update=update)
