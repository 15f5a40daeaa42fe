"""Fixtures for `kubeops` against the Kubernetes API emulator, through the real client over loopback.

- `clock`: one fake clock for the cluster (`clock.now()`) and for `wait_for_rollout` (`clock.monotonic()`).
- `cluster`: a `Cluster` on that clock with `prod/web` seeded two hours ago (revision 1, 2 pods Ready).
- `server`: the emulator on 127.0.0.1, no background ticks: tests drive the controller themselves.
- `api`: `ApiClient(Configuration(host=server.url))`.
Helpers (`deploy`, `set_image`, ...) live in `kubectl_world.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from kubectl_world import IMAGE_1, NS, T0, FakeClock
from kubernetes.client import ApiClient, Configuration

from sandbox.k8s import Cluster, ClusterServer, serve_cluster


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def cluster(clock: FakeClock) -> Cluster:
    c = Cluster(clock=clock.now)
    c.seed_deployment(
        NS, "web", IMAGE_1, replicas=2, env={"LOG_LEVEL": "info"}, created_at=T0 - timedelta(hours=2)
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
def api(server: ClusterServer) -> Iterator[ApiClient]:
    with ApiClient(Configuration(host=server.url)) as client:
        yield client
