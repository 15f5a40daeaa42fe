"""What the sandbox tests share: the official Kubernetes client pointed at a world, and HTTP helpers."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from kubernetes import client as k8s

from sandbox.world import ADMIN_TOKEN, World


@dataclass
class Kube:
    apps: k8s.AppsV1Api
    core: k8s.CoreV1Api
    custom: k8s.CustomObjectsApi

    def deployment(self) -> k8s.V1Deployment:
        return self.apps.read_namespaced_deployment("emotionscare", "prod")

    def revision(self) -> int:
        return int(self.deployment().metadata.annotations["deployment.kubernetes.io/revision"])

    def pods(self) -> list[k8s.V1Pod]:
        return self.core.list_namespaced_pod("prod", label_selector="app=emotionscare").items

    def set_env(self, name: str, value: str) -> None:
        """`kubectl set env deployment/emotionscare NAME=VALUE` (a strategic merge patch)."""
        body = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "emotionscare", "env": [{"name": name, "value": value}]}]
                    }
                }
            }
        }
        self.apps.patch_namespaced_deployment("emotionscare", "prod", body)

    def scale(self, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale("emotionscare", "prod", {"spec": {"replicas": replicas}})

    def pod_usage(self) -> dict[str, tuple[int, int]]:
        """`kubectl top pods`: pod → (millicores, bytes) from metrics.k8s.io."""
        from kubernetes.utils import parse_quantity

        items = self.custom.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", "prod", "pods")[
            "items"
        ]
        out = {}
        for item in items:
            usage = item["containers"][0]["usage"]
            out[item["metadata"]["name"]] = (
                int(parse_quantity(usage["cpu"]) * 1000),
                int(parse_quantity(usage["memory"])),
            )
        return out


def status_of(url: str, method: str = "GET", **kwargs: object) -> int:
    """The status code, or 0 when the connection is refused or reset before an answer.

    Reset: the service stops listening in steps (the listener is marked closed, its thread joined, then
    its socket closed); a connection the kernel accepted in between is reset when the socket closes, as a
    real load balancer resets what is in flight when its last endpoint goes (seen once in CI)."""
    try:
        return httpx.request(method, url, timeout=5.0, **kwargs).status_code  # type: ignore[arg-type]
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        return 0


def reset_pool(world: World, token: str | None = ADMIN_TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(world.service.url + "/admin/reset-db-pool", headers=headers, timeout=10.0)
