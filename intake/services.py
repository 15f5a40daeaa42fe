"""How an alert finds its service: the catalogue's names and aliases, and the per-service dedupe key.

Usage::

    ctx = ParseContext(catalogue=load_catalogue(settings))         # the parsers call `name_service`
    name_service(ctx.catalogue, {"app": "payments-api"}, default="emotionscare")   # "payments"
    name_service(ctx.catalogue, {"service": "ledger"}, default="emotionscare")     # "ledger" (not catalogued)
    dedupe_key(alert, catalogue)       # "payments/alertmanager:3f0c…": one key per service and alert

Which service: `runbook.catalogue.match` decides (labels `service`, `app`, `app.kubernetes.io/name`,
namespace + deployment, `job`, the Sentry project, Grafana's folder; names and aliases, case-insensitive)
and the alert carries the service's **canonical name**, whatever spelling it came with. An alert that
names nothing catalogued keeps the name it gave (the first of `GIVEN_LABELS`, else its Sentry project),
or `unknown` when it gave none; with a catalogue of exactly one service (today's single-service
settings) an alert that names nothing is that service's, as before. The intake stores an incident for an
uncatalogued service like any other, plus a timeline entry of kind `NOT_IN_CATALOGUE`; `respond` looks
the service up in the catalogue and escalates it without running a runbook.

Dedupe is per service: the key is `<canonical service>/<key>`. Alertmanager's and Grafana's own
fingerprints hash the label set as sent, so `service=payments-api` and `service=payments` would be two
keys; for them (and generic alerts without their own fingerprint) the key hashes the alert's name and
its labels with every label that names the service rewritten to the canonical name. Sentry's keys
(issue and metric-alert ids) and a generic alert's own fingerprint are kept after the service.
Without a catalogue (`ParseContext.catalogue is None`, as tests that build the config by hand do) the
key is the alert's fingerprint, as before.
"""

from __future__ import annotations

from collections.abc import Mapping

from runbook.catalogue import NAME_LABELS, Catalogue, match
from runbook.models import Alert, TimelineEntry

__all__ = [
    "GIVEN_LABELS",
    "NOT_IN_CATALOGUE",
    "UNKNOWN",
    "canonical_labels",
    "dedupe_key",
    "in_catalogue",
    "name_service",
    "not_in_catalogue_entry",
]

UNKNOWN = "unknown"
"""The service of an alert that names none (with a catalogue of more than one service)."""

NOT_IN_CATALOGUE = "service_not_in_catalogue"
"""Timeline kind written on an incident whose service the catalogue does not know."""

GIVEN_LABELS: tuple[str, ...] = NAME_LABELS
"""Labels whose value is the name an uncatalogued alert is stored under (`job` is not one: a scrape
job such as `node-exporter` names an exporter, not a service)."""

_NAMING_LABELS: tuple[str, ...] = (*NAME_LABELS, "job", "grafana_folder")
"""Every label the catalogue's resolution reads as a name (rewritten to the canonical name in the key)."""


def name_service(
    catalogue: Catalogue,
    labels: Mapping[str, str],
    *,
    sentry_project: str | None = None,
    given: str | None = None,
) -> str:
    """The canonical name of the catalogued service the alert names; else the name it gave; else UNKNOWN.

    `given` is a name the source states outside the labels (a generic alert's `service`, a Sentry slug
    mapped by `sentry_projects`): when set, it decides. A catalogue of one service takes the alerts that
    name nothing (today's single service).
    """
    if given and given.strip():  # stated outright: it decides, catalogued or not
        service = catalogue.find(given.strip())
        return given.strip() if service is None else service.name
    found = match(catalogue, labels, sentry_project or None)
    if found is not None:
        return found.service.name
    for key in GIVEN_LABELS:
        value = labels.get(key, "").strip()
        if value:
            return value
    if sentry_project and sentry_project.strip():
        return sentry_project.strip()
    if len(catalogue.services) == 1:
        return catalogue.services[0].name
    return UNKNOWN


def in_catalogue(catalogue: Catalogue | None, service: str) -> bool:
    """Whether `service` is catalogued (always true without a catalogue: nothing to check against)."""
    return catalogue is None or catalogue.find(service) is not None


def canonical_labels(catalogue: Catalogue, labels: Mapping[str, str], service: str) -> dict[str, str]:
    """`labels` with each naming label whose value is `service` (by name or alias) set to its name."""
    out = dict(labels)
    for key in _NAMING_LABELS:
        value = out.get(key)
        if value:
            found = catalogue.find(value.strip())
            if found is not None and found.name == service:
                out[key] = service
    return out


_LABEL_HASHED = frozenset({"alertmanager", "grafana"})
"""Sources whose own fingerprint is a hash of the label set as sent (alias spellings differ)."""


def dedupe_key(alert: Alert, catalogue: Catalogue | None) -> str:
    """The incident key of `alert`: per service (see the module docstring)."""
    if catalogue is None:
        return alert.fingerprint
    if alert.source.value in _LABEL_HASHED:
        from intake.parsers.common import stable_fingerprint  # the parsers import this module

        key = stable_fingerprint(
            alert.source.value,
            alert.service,
            alert.name,
            canonical_labels(catalogue, alert.labels, alert.service),
        )
    else:
        key = alert.fingerprint
    return f"{alert.service}/{key}"


def not_in_catalogue_entry(alert: Alert) -> TimelineEntry:
    """The timeline entry saying the incident's service is not catalogued (respond: escalate, no runbook)."""
    return TimelineEntry(
        actor="intake",
        kind=NOT_IN_CATALOGUE,
        message=(
            f"service {alert.service!r} is not in the catalogue: no runbook is run for it and no catalogued "
            "service is touched; escalate to the default contact"
        ),
        evidence={"alert_id": alert.id, "service": alert.service},
    )
