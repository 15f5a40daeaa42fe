"""The `/scale` and `/status` subresources through the official client."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox.k8s import Cluster, ClusterServer

from .support import NAME, NS


def test_read_scale(apps: client.AppsV1Api) -> None:
    scale = apps.read_namespaced_deployment_scale(NAME, NS)
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    assert scale.spec.replicas == 2
    assert scale.status.replicas == 2
    assert scale.status.selector == "app=web"
    assert scale.metadata.uid == apps.read_namespaced_deployment(NAME, NS).metadata.uid


@pytest.mark.parametrize("content_type", [None, "application/merge-patch+json"])
def test_patch_scale_then_the_controller_scales_up(
    cluster: Cluster,
    server: ClusterServer,
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
    content_type: str | None,
) -> None:
    kwargs = {"_content_type": content_type} if content_type else {}
    scale = apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 3}}, **kwargs)
    # the client sends a dict as SMP unless told otherwise; kubectl sends a merge patch
    assert server.requests[-1].content_type == (content_type or "application/strategic-merge-patch+json")
    assert scale.spec.replicas == 3
    dep = apps.read_namespaced_deployment(NAME, NS)
    assert dep.spec.replicas == 3 and dep.metadata.generation == 2
    cluster.settle()
    dep = apps.read_namespaced_deployment(NAME, NS)
    assert (dep.status.replicas, dep.status.ready_replicas, dep.status.observed_generation) == (3, 3, 2)
    assert len(core.list_namespaced_pod(NS, label_selector="app=web").items) == 3
    events = core.list_namespaced_event(NS, field_selector="reason=ScalingReplicaSet").items
    assert events[-1].message.startswith("Scaled up replica set web-") and events[-1].message.endswith(
        "to 3 from 2"
    )


def test_replace_scale_checks_the_resource_version(cluster: Cluster, apps: client.AppsV1Api) -> None:
    scale = apps.read_namespaced_deployment_scale(NAME, NS)
    scale.spec.replicas = 1
    assert apps.replace_namespaced_deployment_scale(NAME, NS, scale).spec.replicas == 1
    cluster.settle()
    assert apps.read_namespaced_deployment(NAME, NS).status.replicas == 1
    scale.spec.replicas = 5  # stale resourceVersion
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment_scale(NAME, NS, scale)
    assert err.value.status == 409


def test_negative_scale_is_422(apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": -2}})
    assert err.value.status == 422
    assert json.loads(err.value.body)["details"]["causes"][0]["field"] == "spec.replicas"


def test_read_status_subresource(apps: client.AppsV1Api) -> None:
    dep = apps.read_namespaced_deployment_status(NAME, NS)
    assert dep.status.available_replicas == 2
    assert dep.metadata.name == NAME
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_status(NAME, NS, {"status": {"replicas": 9}})
    assert err.value.status == 405
