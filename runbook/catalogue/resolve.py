"""Which catalogued service an alert is about, from what the alert carries: `resolve` (the service or
None, "unknown") and `match` (also which label decided). Pure functions: no I/O, no settings.

Usage::

    service = resolve(catalogue, {"app_kubernetes_io_name": "payments"}, sentry_project=None)
    if service is None:
        ...  # not in the catalogue: acknowledge, page the default contact, run no runbook

The order, first match wins (a value that names no service falls through to the next):

1. the labels `service`, `app`, `app.kubernetes.io/name` and its Prometheus form `app_kubernetes_io_name`,
   through the catalogue's names and aliases (case-insensitive);
2. `namespace` + `deployment` together, against each service's Kubernetes namespace and Deployment (when
   two services on different clusters match, the `cluster` label must pick one, else none is chosen);
3. the label `job` (Prometheus' scrape job), through names and aliases;
4. the Sentry project slug, through names and aliases;
5. Grafana's `grafana_folder` label, through names and aliases (Grafana alerts otherwise carry their
   rule's labels, which steps 1-3 read like Alertmanager's).

An alert that names nothing catalogued resolves to None: it must never be acted on as another service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runbook.catalogue.model import Catalogue, Service

__all__ = ["NAME_LABELS", "Match", "match", "resolve"]

NAME_LABELS: tuple[str, ...] = ("service", "app", "app.kubernetes.io/name", "app_kubernetes_io_name")
"""Labels whose value names the service, in the order they are read."""


@dataclass(frozen=True)
class Match:
    """A resolved service and what named it: `label app=payments`, `sentry project payments`, ..."""

    service: Service
    by: str


def match(catalogue: Catalogue, labels: Mapping[str, str], sentry_project: str | None = None) -> Match | None:
    """The service the alert names and how (see the module docstring for the order), else None."""
    for key in NAME_LABELS:
        found = _named(catalogue, labels, key)
        if found is not None:
            return found
    found = _by_workload(catalogue, labels)
    if found is not None:
        return found
    found = _named(catalogue, labels, "job")
    if found is not None:
        return found
    if sentry_project:
        service = catalogue.find(sentry_project)
        if service is not None:
            return Match(service, f"sentry project {sentry_project}")
    return _named(catalogue, labels, "grafana_folder")


def resolve(
    catalogue: Catalogue, labels: Mapping[str, str], sentry_project: str | None = None
) -> Service | None:
    """The catalogued service the alert names, else None ("unknown": act on nothing)."""
    found = match(catalogue, labels, sentry_project)
    return None if found is None else found.service


def _named(catalogue: Catalogue, labels: Mapping[str, str], key: str) -> Match | None:
    value = labels.get(key)
    if not value:
        return None
    service = catalogue.find(value.strip())
    return None if service is None else Match(service, f"label {key}={value}")


def _by_workload(catalogue: Catalogue, labels: Mapping[str, str]) -> Match | None:
    namespace, deployment = labels.get("namespace"), labels.get("deployment")
    if not namespace or not deployment:
        return None
    candidates = [
        s
        for s in catalogue.services
        if s.kubernetes.namespace == namespace and s.kubernetes.deployment == deployment
    ]
    cluster = labels.get("cluster")
    if len(candidates) > 1 and cluster:
        candidates = [s for s in candidates if s.kubernetes.cluster == cluster]
    if len(candidates) != 1:
        return None  # none, or the same Deployment on several clusters with nothing to tell them apart
    return Match(candidates[0], f"labels namespace={namespace} deployment={deployment}")
