"""Starting and stopping a `World`'s parts, in order: PostgreSQL and the databases, the clusters, the
kubeconfig, the stand-ins, the database provider, the services, the catalogue, the traffic.

`World.start()` and `World.stop()` call these; a failed start is stopped again by `World.start()`.
Stopping is idempotent and safe after a failed start: PostgreSQL is stopped when the world owns it, else
only this world's databases are dropped, and the data folder the world created is deleted.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from sandbox.external_apis import API_NAMES
from sandbox.k8s import kubeconfig, serve_cluster
from sandbox.world.catalogue import catalogue_yaml, write_kubeconfig

if TYPE_CHECKING:
    from sandbox.world.assembly import World

__all__ = ["start_parts", "stop_parts"]


def start_parts(world: World, say: Callable[[str], None]) -> None:
    """Start every part of `world` (see the `sandbox.world` docstring); `say(line)` hears each step."""
    if not world.postgres.running:
        say(f"starting PostgreSQL on {world.host}:{world.postgres.port}")
        world.postgres.start()
    for unit in world.units:
        if unit.db_name is not None:
            world.postgres.create_database(unit.db_name)
            say(f"PostgreSQL ready: database {unit.db_name} on {world.host}:{world.postgres.port}")
        unit.seed()
    for index, (name, cluster) in enumerate(world._cluster_objects.items()):
        port = world.port_for("kubernetes" if index == 0 else f"kubernetes-{name}")
        world.clusters[name] = serve_cluster(cluster, world.host, port, world.tick_interval_s)
        where = ", ".join(f"{u.namespace}/{u.deployment_name}" for u in world.units if u.cluster is cluster)
        say(f"Kubernetes API emulator ready: {world.clusters[name].url} (cluster {name}, deployment {where})")
    _write_kubeconfig(world)
    for standin in (world.slack, world.pagerduty, world.sentry):
        standin.start(world.host, world.port_for(standin.name))
    say(
        f"Slack, PagerDuty, Sentry stand-ins ready: {world.slack.url} {world.pagerduty.url} {world.sentry.url}"
    )
    for name in API_NAMES:
        world.apis.api(name).start(world.host, world.port_for(name))
    say("Hume, OpenAI, Spotify stand-ins ready: " + " ".join(world.apis.urls.values()))
    if world.provider is not None:
        world.provider.start(world.host, world.port_for("database-provider"))
    for unit in world.units:
        if unit.spec.external_apis:
            unit.service.apis = world.apis.urls
        unit.service.start(world.host, world.port_for(unit.spec.port_name))
        say(f"service {unit.name} ready: {unit.service.url} (/health, /api/health)")
    if world.many:
        text, _env = catalogue_yaml(world)
        world.catalogue_path.write_text(text, encoding="utf-8")
        say(f"service catalogue: {world.catalogue_path}")
    world.traffic.start()
    if world.traffic.rate_per_s > 0:
        say(f"synthetic traffic: {world.traffic.rate_per_s:g} request(s)/s")


def _write_kubeconfig(world: World) -> None:
    if world.many:
        write_kubeconfig(world, world.kubeconfig_path)
    else:
        kubeconfig(
            world.clusters[world.units[0].cluster_name].url,
            world.kubeconfig_path,
            namespace=world.units[0].namespace,
        )


def stop_parts(world: World) -> None:
    """Stop every thread and server of `world`, PostgreSQL (its own) or its databases (a shared server),
    and delete the data folder it created."""
    world.traffic.stop()
    for unit in world.units:
        unit.service.stop()
    for standin in (world.slack, world.pagerduty, world.sentry, world.provider):
        if standin is not None and standin.server.listening:
            standin.stop()
    world.apis.stop()
    for server in world.clusters.values():
        server.stop()
    world.clusters = {}
    if world._own_pg:
        world.postgres.stop()
    elif world.postgres.running:
        _drop_databases(world)
    if world._own_dir:
        shutil.rmtree(world.data_dir, ignore_errors=True)


def _drop_databases(world: World) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(world.postgres.dsn("postgres"), autocommit=True, connect_timeout=5) as conn:
        for unit in world.units:
            if unit.db_name is not None:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(unit.db_name))
                )
