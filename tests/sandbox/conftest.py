"""Fixtures of the sandbox tests.

The `sandbox_world` fixture (a fresh world per test on the session's PostgreSQL) comes from
tests/conftest.py; `sandbox.testing` defines the same for other suites.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from sandbox_support import Kube

from sandbox.world import World


@pytest.fixture
def kube(sandbox_world: World) -> Iterator[Kube]:
    """The official client's Apps, Core and CustomObjects APIs against the world's emulator."""
    assert sandbox_world.k8s is not None
    config = k8s.Configuration(host=sandbox_world.k8s.url)
    with k8s.ApiClient(config) as api:
        yield Kube(k8s.AppsV1Api(api), k8s.CoreV1Api(api), k8s.CustomObjectsApi(api))
