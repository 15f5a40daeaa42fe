"""Shared helpers of the kubeops tests: the seeded world's names, a fake clock, rollout shortcuts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client import ApiClient, AppsV1Api

from kubeops.models import Workload
from sandbox.k8s import Cluster

NS = "prod"
WEB = Workload(namespace=NS, name="web")
IMAGE_1 = "registry.local/web:1.0.0"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """Time that moves only when told: `advance(s)`; read as an aware datetime or a monotonic float."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.elapsed_s = 0.0

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed_s)

    def monotonic(self) -> float:
        return self.elapsed_s

    def advance(self, seconds: float) -> None:
        self.elapsed_s += seconds


def set_image(api: ApiClient, image: str, **annotations: str) -> None:
    """`kubectl set image deployment/web web=<image>` (strategic merge patch), plus Deployment annotations."""
    patch: dict[str, Any] = {
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}
    }
    if annotations:
        patch["metadata"] = {"annotations": annotations}
    AppsV1Api(api).patch_namespaced_deployment(WEB.name, WEB.namespace, patch, _request_timeout=5)


def deploy(api: ApiClient, cluster: Cluster, image: str, **annotations: str) -> None:
    """A new revision, rolled out to completion."""
    set_image(api, image, **annotations)
    cluster.settle(instant=True)


def deployment(cluster: Cluster, workload: Workload = WEB) -> dict[str, Any]:
    return cluster.get("Deployment", workload.namespace, workload.name)


def revision_annotations(cluster: Cluster) -> dict[str, dict[str, str]]:
    """ReplicaSet name → its annotations, for the Deployment's ReplicaSets."""
    return {
        rs["metadata"]["name"]: rs["metadata"].get("annotations") or {}
        for rs in cluster.list("ReplicaSet", NS)
        if rs["metadata"]["name"].startswith("web-")
    }


def running_image(cluster: Cluster) -> str:
    image: str = deployment(cluster)["spec"]["template"]["spec"]["containers"][0]["image"]
    return image
