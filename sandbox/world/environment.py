"""The RUNBOOK_* environment that points the runbooks at a started `World` (runbook.settings).

The first service's settings; a world of many services adds RUNBOOK_CATALOGUE, the kubeconfig of its
clusters' contexts and the variables the catalogue's `{env: ...}` references name.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sandbox.provider import PROVIDER_PROJECT, PROVIDER_TOKEN
from sandbox.service import FEATURE_FLAGS
from sandbox.world.catalogue import catalogue_yaml
from sandbox.world.specs import ADMIN_TOKEN, SENTRY_TOKEN, SLACK_TOKEN

if TYPE_CHECKING:
    from sandbox.world.assembly import World

__all__ = ["settings_env"]


def settings_env(world: World) -> dict[str, str]:
    """The RUNBOOK_* environment that points the runbooks at this world (runbook.settings): the first
    service's; a world of many adds RUNBOOK_CATALOGUE, the kubeconfig of its clusters' contexts and
    the variables the catalogue's `{env: ...}` references name."""
    k8s = world.k8s
    if k8s is None:
        raise RuntimeError("World.settings_env(): start() the world first")
    first = world.units[0]
    apis = [
        {"name": api, "health_url": world.apis.health_url(api), "feature_flag": flag, "feature": feature}
        for flag, (feature, api) in FEATURE_FLAGS.items()
        if api is not None
    ]
    env = {
        "RUNBOOK_ENVIRONMENT": "sandbox",
        "RUNBOOK_SERVICE_NAME": first.name,
        "RUNBOOK_SERVICE_BASE_URL": first.service.url,
        "RUNBOOK_SERVICE_ADMIN_TOKEN": ADMIN_TOKEN,
        "RUNBOOK_KUBERNETES_API_URL": k8s.url,
        "RUNBOOK_KUBERNETES_NAMESPACE": first.namespace,
        "RUNBOOK_KUBERNETES_DEPLOYMENT": first.deployment_name,
        "RUNBOOK_DATABASE_DSN": world.dsn,
        "RUNBOOK_EXTERNAL_APIS": json.dumps(apis),
        "RUNBOOK_SLACK_API_URL": f"{world.slack.url}/api",
        "RUNBOOK_SLACK_TOKEN": SLACK_TOKEN,
        "RUNBOOK_PAGERDUTY_EVENTS_URL": f"{world.pagerduty.url}/v2/enqueue",
        "RUNBOOK_PAGERDUTY_ROUTING_KEY": first.spec.routing_key,
        "RUNBOOK_SENTRY_API_URL": f"{world.sentry.url}/api/0",
        "RUNBOOK_SENTRY_TOKEN": SENTRY_TOKEN,
        "RUNBOOK_SENTRY_ORG": "emotionscare",
        "RUNBOOK_SENTRY_PROJECT": first.name,
        "RUNBOOK_STORE_URL": world.store_url,
    }
    if world.provider is not None:
        env |= {
            "RUNBOOK_DATABASE_SUPABASE_API_URL": world.provider.url,
            "RUNBOOK_DATABASE_SUPABASE_PROJECT_REF": PROVIDER_PROJECT,
            "RUNBOOK_DATABASE_SUPABASE_TOKEN": PROVIDER_TOKEN,
        }
    if world.many:
        _text, refs = catalogue_yaml(world)
        env |= refs | {
            "RUNBOOK_CATALOGUE": str(world.catalogue_path),
            "RUNBOOK_KUBERNETES_KUBECONFIG": str(world.kubeconfig_path),
        }
    return env
