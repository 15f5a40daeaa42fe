"""What a `World` reports: what is live and what is broken, for `python -m sandbox status` and the
control API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.external_apis import API_NAMES

if TYPE_CHECKING:
    from sandbox.world.assembly import World

__all__ = ["status"]


def status(world: World) -> dict[str, Any]:
    """What is live and what is broken, for `python -m sandbox status` and the control API: the first
    service's as before, and under `services` each service's cluster, namespace, Deployment, health
    URLs and active faults."""
    first = world.units[0]
    dep = first.deployment()
    revision = world.service.revision
    with world.lock:
        active = {f.name: f.describe() for f in world.fault_state.values() if f.in_force()}
    return {
        "faults": active,
        "deployment": {
            "name": f"{first.namespace}/{first.deployment_name}",
            "image": first.live_image(),
            "revision": first.revision(),
            "replicas": dep["spec"].get("replicas"),
            "ready": len(world.service.ready_pods),
            "env": first.live_env(),
            "bad": bool(revision and revision.bad),
        },
        "service": {
            "url": world.service.url,
            "listening": world.service.server.listening,
            "db_pool": world.service.db.stats(),
            "metrics": {k: v for k, v in world.service.stats.window().items() if k != "routes"},
        },
        "postgres": "running" if world.postgres.running else "stopped",
        "apis": {name: world.apis.mode(name) for name in API_NAMES},
        "services": {unit.name: unit.status() for unit in world.units},
    }
