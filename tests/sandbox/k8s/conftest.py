"""Fixtures for the Kubernetes API emulator tests: a cluster on a manual clock, served on a free port,
and the official client pointed at it.

- `clock`: a `ManualClock` at a fixed instant; tests move it.
- `cluster`: a `Cluster` with `prod/web` seeded two hours ago (revision 1, two Ready pods).
- `server`: the cluster served on 127.0.0.1:0 with **no** background ticks (tests call `cluster.tick()`).
- `api`: `kubernetes.client.ApiClient(Configuration(host=server.url))`, closed at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from kubernetes import client

from sandbox.k8s import Cluster, ClusterServer, serve_cluster
from sandbox.k8s.clock import ManualClock

from .support import IMAGE, NAME, NS, T0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def cluster(clock: ManualClock) -> Cluster:
    c = Cluster(clock=clock)
    c.seed_deployment(
        NS, NAME, IMAGE, replicas=2, env={"DB_POOL_SIZE": "20"}, created_at=T0 - timedelta(hours=2)
    )
    return c


@pytest.fixture
def server(cluster: Cluster) -> Iterator[ClusterServer]:
    srv = serve_cluster(cluster, tick_interval_s=0)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def api(server: ClusterServer) -> Iterator[client.ApiClient]:
    api_client = client.ApiClient(client.Configuration(host=server.url))
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)
