"""The whole sandbox world on 127.0.0.1: clusters, services, databases, external APIs, Slack, PagerDuty,
Sentry.

Usage::

    world = World().start()                       # free ports; World(port_base=8100): fixed ones
    os.environ.update(world.settings_env())       # RUNBOOK_* pointing the runbooks at this world
    world.inject("bad-deploy", ago_min=2)         # sandbox/faults; world.inject("api-down", "hume")
    world.status()                                # what is live, which faults are active
    world.clear()                                 # every fault removed, the world healthy
    world.reset()                                 # ... and the baseline Deployments, stand-ins emptied
    world.stop()                                  # every server, thread and the PostgreSQL process

    world = World(services="many").start()        # three services on two clusters
    world.service_names                           # ["emotionscare", "payments", "search"]
    world.unit("payments").service.url            # one service's parts (sandbox.world.unit)
    world.clusters["west"].url                    # each cluster's Kubernetes API emulator
    world.catalogue_path                          # the service catalogue it wrote (runbook.catalogue)
    world.inject("bad-deploy", service="payments")

What starts (`start()`, about 0.3 s on a shared PostgreSQL server, 1 s with its own):
- a real PostgreSQL (`sandbox.postgres`) with the service's database `emotionscare` (or a database of
  its own on a server shared between worlds, `postgres=`), and a Supabase-like management API whose
  `POST /v1/projects/{ref}/restart` restarts it (the guide's "Option 3");
- the Kubernetes API emulator with Deployment `prod/emotionscare`: v1.0.0 three days ago, v1.1.0
  (`GOOD_IMAGE`) a day ago and live, two Ready pods, `DB_POOL_SIZE=5`, every feature flag on;
- the service under care (`sandbox.service.EmotionsCare`), following that Deployment;
- Hume, OpenAI and Spotify stand-ins (with API keys the service sends), Slack, PagerDuty, Sentry;
- optional synthetic traffic (`traffic_rate_per_s`): users calling the feature endpoints, so
  metrics, logs and Sentry's error rate move the way production's do.

A world of many services (`services="many"`) adds, each an app instance of its own on its own port:
- `payments` on the same cluster `east` (namespace `payments`, Deployment `payments`), with its own
  database `payments` on the same PostgreSQL server, Slack channels #payments-alerts and
  #payments-incidents and a PagerDuty routing key of its own;
- `search` on a second Kubernetes API emulator, cluster `west` (namespace `search`), without a database;
- one kubeconfig with the contexts `sandbox-east` and `sandbox-west`, and a service catalogue
  (`catalogue_path`) naming them, its secrets by `{env: VAR}` reference; `settings_env()` adds
  `RUNBOOK_CATALOGUE`, `RUNBOOK_KUBERNETES_KUBECONFIG` and those variables.

Releases are rolled out through the emulator's own API (a template change the controller rolls),
optionally back-dated (`rollout(image, ago=...)`) so a runbook sees a deploy "2 hours ago".

The package, by what each part does: `specs` (what each service is, tokens, ports), `unit` (one service:
its Deployment, app, faults and status), `catalogue` (the catalogue file and the kubeconfig),
`assembly` (`World`: wiring and resetting the parts, the first service's API), `lifecycle` (starting and
stopping the parts in order), `environment` (the RUNBOOK_* settings pointing at the world), `report`
(`status()`: what is live and what is broken).
"""

from sandbox.pagerduty import DEFAULT_ROUTING_KEY
from sandbox.provider import PROVIDER_PROJECT, PROVIDER_TOKEN, DatabaseProvider
from sandbox.service import DEPLOYMENT, NAMESPACE, SERVICE
from sandbox.traffic import SyntheticTraffic
from sandbox.world.assembly import World
from sandbox.world.specs import (
    ADMIN_TOKEN,
    API_KEYS,
    BASE_ENV,
    BASE_REPLICAS,
    EMOTIONSCARE,
    GOOD_IMAGE,
    IMAGE_REPO,
    PAYMENTS,
    PORT_OFFSETS,
    PREVIOUS_IMAGE,
    SEARCH,
    SENTRY_TOKEN,
    SLACK_TOKEN,
    ServiceSpec,
)
from sandbox.world.unit import WorldService

__all__ = [
    "ADMIN_TOKEN",
    "API_KEYS",
    "BASE_ENV",
    "BASE_REPLICAS",
    "DEFAULT_ROUTING_KEY",
    "DEPLOYMENT",
    "EMOTIONSCARE",
    "GOOD_IMAGE",
    "IMAGE_REPO",
    "NAMESPACE",
    "PAYMENTS",
    "PORT_OFFSETS",
    "PREVIOUS_IMAGE",
    "PROVIDER_PROJECT",
    "PROVIDER_TOKEN",
    "SEARCH",
    "SENTRY_TOKEN",
    "SERVICE",
    "SLACK_TOKEN",
    "DatabaseProvider",
    "ServiceSpec",
    "SyntheticTraffic",
    "World",
    "WorldService",
]
