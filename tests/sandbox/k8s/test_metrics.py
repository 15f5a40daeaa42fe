"""metrics.k8s.io through the official client: CustomObjectsApi and kubernetes.utils' helpers."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.utils import parse_quantity
from kubernetes.utils.metrics import get_nodes_metrics, get_pods_metrics

from sandbox.k8s import Cluster

from .support import NAME, NS


def test_pod_metrics_via_custom_objects(cluster: Cluster, api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    listed = custom.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", NS, "pods")
    assert listed["kind"] == "PodMetricsList"
    names = sorted(m["metadata"]["name"] for m in listed["items"])
    assert names == sorted(p["metadata"]["name"] for p in cluster.ready_pods(NS, NAME))
    hot = names[0]
    cluster.set_pod_usage(NS, hot, cpu_m=950, memory_bytes=480 * 1024 * 1024)
    one = custom.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", NS, "pods", hot)
    usage = one["containers"][0]["usage"]
    assert parse_quantity(usage["cpu"]) == parse_quantity("950m")
    assert parse_quantity(usage["memory"]) == 480 * 1024 * 1024
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", NS, "pods", "web-gone")
    assert err.value.status == 404


def test_metrics_helpers_from_kubernetes_utils(cluster: Cluster, api: client.ApiClient) -> None:
    pods = get_pods_metrics(api, NS, label_selector=f"app={NAME}")
    assert len(pods["items"]) == 2
    for m in pods["items"]:
        assert parse_quantity(m["containers"][0]["usage"]["cpu"]) == parse_quantity("25m")
    nodes = get_nodes_metrics(api)
    by_node = {n["metadata"]["name"]: parse_quantity(n["usage"]["cpu"]) for n in nodes["items"]}
    assert set(by_node) == {"sandbox-node-1", "sandbox-node-2"}
    # the node figure is the system share plus its pods (one web pod on each node)
    assert by_node == {"sandbox-node-1": parse_quantity("145m"), "sandbox-node-2": parse_quantity("145m")}
    node = client.CustomObjectsApi(api).get_cluster_custom_object(
        "metrics.k8s.io", "v1beta1", "nodes", "sandbox-node-2"
    )
    assert node["kind"] == "NodeMetrics"
    assert parse_quantity(node["usage"]["memory"]) == (900 + 96) * 1024 * 1024
