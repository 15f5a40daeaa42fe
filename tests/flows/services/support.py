"""What the service tests read from the world: every request each catalogued service's cluster, endpoints
and external APIs received (to count them), cleared before the run under test."""

from __future__ import annotations

from typing import Any

from sandbox.httpserver import RecordedRequest

World = Any
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _listed(holder: Any) -> list[RecordedRequest]:
    found = holder.requests
    return list(found() if callable(found) else found)


def requests_of(server: Any) -> list[tuple[str, str]]:
    """(method, path) of each request `server` recorded, in arrival order."""
    return [(r.method, r.path) for r in _listed(server)]


def _servers(world: World) -> dict[str, Any]:
    """name → a server that records requests: each cluster's API emulator, each service, each external API."""
    servers: dict[str, Any] = {}
    clusters = getattr(world, "clusters", None) or {"cluster": world.k8s}
    for name, server in clusters.items():
        servers[f"k8s:{name}"] = server
    names = getattr(world, "service_names", None)
    if names:
        for name in names:
            servers[f"service:{name}"] = world.unit(name).service.server
    else:
        servers["service:emotionscare"] = world.service.server
    for name, api in world.apis.apis.items():
        servers[f"api:{name}"] = api.server
    return servers


def clear_requests(world: World) -> None:
    for server in _servers(world).values():
        clear = getattr(server, "clear_requests", None) or server.reset_requests
        clear()


def all_requests(world: World) -> dict[str, list[str]]:
    """name → the requests it received since `clear_requests`, as "METHOD path" lines."""
    return {
        name: [f"{r.method} {r.path}" for r in _listed(server)] for name, server in _servers(world).items()
    }


def writes(world: World) -> dict[str, list[str]]:
    """name → the writes (POST, PUT, PATCH, DELETE) it received since `clear_requests`."""
    return {
        name: [line for line in lines if line.split(" ", 1)[0] in WRITES]
        for name, lines in all_requests(world).items()
    }
