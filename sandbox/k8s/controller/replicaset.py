"""The replica-set controller: create or delete pods to match spec.replicas, then the ReplicaSet status.

Follows kubernetes `pkg/controller/replicaset` (`manageReplicas`, `calculateStatus`); pods are made and
removed through the emulator's kubelet, which ranks them for deletion as `controller.ActivePods` does.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sandbox.k8s.controller.util import set_or_drop
from sandbox.k8s.selectors import label_selector_matches

if TYPE_CHECKING:
    from sandbox.k8s.cluster import Cluster

__all__ = ["ReplicaSetController"]


class ReplicaSetController:
    """kube-controller-manager's replica-set controller: pods to match spec.replicas, then status."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.store = cluster.store

    def sync_all(self, now: datetime) -> None:
        for rs in list(self.store.all("ReplicaSet")):
            self.sync(rs, now)

    def sync(self, rs: dict[str, Any], now: datetime) -> None:
        kubelet = self.cluster.kubelet
        pods = self.cluster.pods_of(rs)
        want = int(rs["spec"].get("replicas", 0))
        if len(pods) < want:
            for _ in range(want - len(pods)):
                pod = kubelet.create_pod(rs, now)
                self.cluster.record_event(
                    rs,
                    "SuccessfulCreate",
                    f"Created pod: {pod['metadata']['name']}",
                    now=now,
                    component="replicaset-controller",
                )
                pods.append(pod)
        elif len(pods) > want:
            for pod in sorted(pods, key=kubelet.deletion_rank)[: len(pods) - want]:
                kubelet.delete_pod(pod, now)
                self.cluster.record_event(
                    rs,
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    now=now,
                    component="replicaset-controller",
                )
                pods.remove(pod)
        status: dict[str, Any] = {"replicas": len(pods)}
        set_or_drop(
            status,
            "fullyLabeledReplicas",
            sum(
                1 for p in pods if label_selector_matches(rs["spec"]["selector"], p["metadata"].get("labels"))
            ),
        )
        min_ready = int(rs["spec"].get("minReadySeconds", 0))
        set_or_drop(status, "readyReplicas", sum(1 for p in pods if kubelet.is_ready(p)))
        set_or_drop(
            status, "availableReplicas", sum(1 for p in pods if kubelet.is_available(p, min_ready, now))
        )
        status["observedGeneration"] = int(rs["metadata"].get("generation", 1))
        if rs.get("status") != status:
            rs["status"] = status
            self.store.put("ReplicaSet", rs)
