"""Reads and lists through the official client: complete objects, selectors, Status errors."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.k8s.conftest import IMAGE, NAME, NS, T0


def test_read_deployment_is_complete_and_realistic(apps: client.AppsV1Api) -> None:
    dep = apps.read_namespaced_deployment(NAME, NS)
    assert dep.metadata.uid and len(dep.metadata.uid) == 36
    assert dep.metadata.resource_version.isdigit()
    assert dep.metadata.generation == 1
    assert dep.metadata.creation_timestamp.isoformat() == "2026-07-01T10:00:00+00:00"
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert dep.spec.template.spec.containers[0].image == IMAGE
    assert dep.spec.strategy.rolling_update.max_surge == "25%"
    assert dep.status.observed_generation == 1
    assert (dep.status.replicas, dep.status.updated_replicas, dep.status.available_replicas) == (2, 2, 2)
    reasons = {c.type: c.reason for c in dep.status.conditions}
    assert reasons == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    assert dep.status.conditions[0].last_update_time < T0


def test_read_missing_deployment_is_a_404_status(apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("nope", NS)
    assert err.value.status == 404
    assert err.value.headers["Content-Type"] == "application/json"
    assert '"reason":"NotFound"' in err.value.body
    assert 'deployments.apps \\"nope\\" not found' in err.value.body
