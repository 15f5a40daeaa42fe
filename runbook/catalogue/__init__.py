"""The service catalogue: every service under care, how alerts name it, where it runs, who to call.

Usage::

    from runbook.catalogue import load_catalogue, resolve
    from runbook.settings import load_settings

    catalogue = load_catalogue(load_settings())   # RUNBOOK_CATALOGUE's file, else the settings as one service
    service = resolve(catalogue, alert_labels, sentry_project=None)   # a Service, or None: unknown
    service.kubernetes.namespace, service.health.base_url, service.database.dsn.read()

    $ python -m runbook.catalogue check docs/examples/catalogue.example.yaml
    ok: 3 services                                  # or one line per error naming service and field, exit 2
    $ python -m runbook.catalogue show [FILE]       # the resolved catalogue, secrets as references only

The file is YAML (`.yaml`, `.yml`) or TOML (`.toml`): a `services` list, each service with its name and
aliases, owning team, Kubernetes target (cluster, namespace, Deployment, container, replica bounds),
health URLs, database, external APIs, Slack channels, PagerDuty key, escalation contacts, rollback window
and timing overrides. Unknown fields are errors; secrets are written by reference (`{env: VAR}` or
`{file: /path}`), never inline. docs/catalogue.md describes it, with its schema generated from the model.

The package, by what each part does: `model` (the models and the checks across services), `loading`
(files, one-line errors, the catalogue of one, `load_catalogue`), `resolve` (an alert's service),
`reference` (the generated schema, `plain` for `show`), `__main__` (the command).
"""

from runbook.catalogue.loading import (
    CatalogueError,
    catalogue_from_settings,
    load_catalogue,
    parse_catalogue,
    read_catalogue,
)
from runbook.catalogue.model import (
    IN_CLUSTER,
    Catalogue,
    CatalogueApi,
    Escalation,
    Health,
    Kubernetes,
    PagerDuty,
    Replicas,
    SecretRef,
    Service,
    ServiceDatabase,
    Slack,
    Timings,
)
from runbook.catalogue.reference import plain, schema_markdown
from runbook.catalogue.resolve import NAME_LABELS, Match, match, resolve

__all__ = [
    "IN_CLUSTER",
    "NAME_LABELS",
    "Catalogue",
    "CatalogueApi",
    "CatalogueError",
    "Escalation",
    "Health",
    "Kubernetes",
    "Match",
    "PagerDuty",
    "Replicas",
    "SecretRef",
    "Service",
    "ServiceDatabase",
    "Slack",
    "Timings",
    "catalogue_from_settings",
    "load_catalogue",
    "match",
    "parse_catalogue",
    "plain",
    "read_catalogue",
    "resolve",
    "schema_markdown",
]
