"""The world's service catalogue (runbook.catalogue's file format) and the kubeconfig its clusters name.

Usage::

    text, env = catalogue_yaml(world)      # the YAML and the variables its {env: ...} references name
    write_kubeconfig(world, path)          # contexts sandbox-east, sandbox-west (current: the first's)

Secrets are written by reference only (`{env: VAR}`), as the catalogue requires; `World.settings_env()`
sets the variables. Each service's `kubernetes.cluster` is a context of the world's one kubeconfig
(`RUNBOOK_KUBERNETES_KUBECONFIG`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sandbox.private_files import write_private
from sandbox.service import FEATURE_FLAGS

if TYPE_CHECKING:
    from sandbox.world.assembly import World
    from sandbox.world.unit import WorldService

__all__ = ["catalogue_yaml", "context_name", "write_kubeconfig"]


def context_name(cluster: str) -> str:
    """The kubeconfig context of the world's cluster `cluster` (`east` → `sandbox-east`)."""
    return f"sandbox-{cluster}"


def _service(world: World, unit: WorldService, env: dict[str, str]) -> dict[str, Any]:
    spec = unit.spec
    out: dict[str, Any] = {
        "name": spec.name,
        "aliases": list(spec.aliases),
        "team": spec.team,
        "customer_facing": spec.customer_facing,
        "kubernetes": {
            "cluster": context_name(spec.cluster),
            "namespace": spec.namespace,
            "deployment": spec.deployment,
            "container": spec.deployment,
            "replicas": {"min": 1, "max": 6},
        },
        "health": {"base_url": unit.service.url},
        "slack": {"alerts_channel": spec.alerts_channel, "incidents_channel": spec.incidents_channel},
        "pagerduty": {"routing_key": {"env": spec.routing_key_env}},
    }
    env[spec.routing_key_env] = spec.routing_key
    if unit.db_name is not None:
        out["database"] = {"dsn": {"env": spec.dsn_env}}
        env[spec.dsn_env] = unit.dsn
    if spec.external_apis:
        out["external_apis"] = [
            {"name": api, "health_url": world.apis.health_url(api), "feature_flag": flag, "feature": feature}
            for flag, (feature, api) in FEATURE_FLAGS.items()
            if api is not None
        ]
    return out


def catalogue_yaml(world: World) -> tuple[str, dict[str, str]]:
    """The catalogue of the world's services as YAML, and the env variables its references name."""
    env: dict[str, str] = {}
    services = [_service(world, unit, env) for unit in world.units]
    header = "# written by the sandbox world: its services, secrets by {env: VAR} reference\n"
    return header + yaml.safe_dump({"services": services}, sort_keys=False), env


def write_kubeconfig(world: World, path: Path) -> Path:
    """A kubeconfig with one context per cluster (`sandbox-east`, ...), each defaulting to the namespace
    of its first service; current: the first service's cluster. JSON is valid YAML."""
    namespaces: dict[str, str] = {}
    for unit in world.units:
        namespaces.setdefault(unit.cluster_name, unit.namespace)
    clusters, users, contexts = [], [], []
    for cluster, server in world.clusters.items():
        name = context_name(cluster)
        clusters.append({"name": name, "cluster": {"server": server.url}})
        users.append({"name": f"{name}-admin", "user": {"token": "sandbox-token"}})
        contexts.append(
            {
                "name": name,
                "context": {"cluster": name, "user": f"{name}-admin", "namespace": namespaces[cluster]},
            }
        )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "users": users,
        "contexts": contexts,
        "current-context": context_name(world.units[0].cluster_name),
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_private(path, json.dumps(config, indent=2) + "\n")
