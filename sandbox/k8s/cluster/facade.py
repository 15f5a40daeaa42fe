"""`Cluster`: the emulated Kubernetes cluster, in memory, thread-safe, driven by a deterministic `tick()`.

Usage::

    cluster = Cluster(pod_start_delay_s=0.0)                 # two Ready nodes, namespaces, no workloads
    cluster.seed_deployment("prod", "web", "registry.local/web:1.4.2", replicas=2,
                            created_at=now - timedelta(hours=2))   # revision 1, pods Running+Ready
    bad = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2-bad"}]}}}}
    cluster.apply_patch("Deployment", "prod", "web", bad)    # strategic merge patch by default
    cluster.tick()                                           # one controller pass (kubelet, RS, Deployment)
    cluster.ready_pods("prod", "web")
    cluster.subscribe(lambda change: ...)                    # after every write, outside the lock

Objects are plain dicts in the API's JSON shape; every method returns copies. Errors are `ApiError`s,
the same the HTTP server answers with. `clock` is a callable returning an aware UTC datetime and can be
replaced at any time (tests backdate or fast-forward it). Serve it over HTTP with `serve_cluster`.

`Cluster` is the facade every caller uses (tests, the service, the HTTP server), built in layers:
`base` (state, clock, reads), `events` (the event recorder), `writes` (create, replace, patch, delete,
scale); this module adds the controller passes, seeding, pods, logs and metrics. The storage, controllers,
kubelet, patching and validation it delegates to are modules of their own.
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.k8s.cluster.writes import ClusterWrites
from sandbox.k8s.controller import DeploymentController, ReplicaSetController
from sandbox.k8s.errors import ApiError
from sandbox.k8s.kubelet import Kubelet
from sandbox.k8s.objects import deployment, node
from sandbox.k8s.selectors import parse_label_selector

__all__ = ["DEFAULT_NAMESPACES", "Cluster"]

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Cluster(ClusterWrites):
    """An in-memory Kubernetes cluster: store, controllers, kubelet, metrics. See the module docstring."""

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        pod_start_delay_s: float = 0.0,
        crash_backoff_s: float = 10.0,
        node_names: tuple[str, ...] = ("sandbox-node-1", "sandbox-node-2"),
        seed: int = 0,
    ) -> None:
        super().__init__(clock, pod_start_delay_s, crash_backoff_s, seed)
        self.kubelet = Kubelet(self)
        self._deployments = DeploymentController(self)
        self._replica_sets = ReplicaSetController(self)
        born = self.now() - timedelta(days=30)
        with self.store.transaction():
            for ns in DEFAULT_NAMESPACES:
                self._ensure_namespace(ns, born)
            for i, name in enumerate(node_names):
                self.store.put(
                    "Node", self._stamp(node(name, born, address=f"10.0.0.{10 + i}"), born), "ADDED"
                )

    # ---- the controllers ----

    def tick(self, instant: bool = False) -> bool:
        """One deterministic controller pass: kubelet (pod starts, crash restarts), ReplicaSets (pods,
        status), Deployments (rollout step, revisions, status, conditions, pruning). True if anything
        changed. `instant` starts pending pods regardless of `pod_start_delay_s`."""
        with self.store.transaction():
            before = self.store.resource_version
            now = self.now()
            self.kubelet.sync_all(now, instant=instant)
            self._replica_sets.sync_all(now)
            self._deployments.sync_all(now)
            return self.store.resource_version != before

    def settle(self, max_ticks: int = 100, instant: bool = False) -> int:
        """Tick until nothing changes (at most `max_ticks`); the number of ticks that changed something."""
        for i in range(max_ticks):
            if not self.tick(instant=instant):
                return i
        return max_ticks

    # ---- seeding ----

    def seed_deployment(
        self,
        namespace: str,
        name: str,
        image: str,
        replicas: int = 2,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a Deployment and run it to completion at `created_at` (default now): revision 1,
        `replicas` pods Running and Ready (or crash-looping if the image is bad)."""
        with self.store.transaction():
            self._now_override = created_at.astimezone(UTC) if created_at else self.now()
            try:
                self.create(
                    "Deployment", namespace, deployment(namespace, name, image, replicas, env, labels)
                )
                self.settle(instant=True)
            finally:
                self._now_override = None
            return self.get("Deployment", namespace, name)

    # ---- pods ----

    def deployment_pods(self, namespace: str, name: str) -> builtins.list[dict[str, Any]]:
        """Copies of every pod of a Deployment (through its ReplicaSets), sorted by name."""
        with self.store.transaction():
            dep = self._require("Deployment", namespace, name)
            pods = [
                copy.deepcopy(p) for rs in self._deployments.owned_replica_sets(dep) for p in self.pods_of(rs)
            ]
            return sorted(pods, key=lambda p: p["metadata"]["name"])

    def ready_pods(self, namespace: str, deployment: str) -> builtins.list[dict[str, Any]]:
        """The Deployment's pods whose Ready condition is True (the ones a Service would route to)."""
        return [p for p in self.deployment_pods(namespace, deployment) if self.kubelet.is_ready(p)]

    def append_pod_log(self, namespace: str, pod: str, line: str, container: str | None = None) -> None:
        """Add a line to the current log of a pod's container (the only one if `container` is None)."""
        with self.store.transaction():
            self.kubelet.append_log(self._require("Pod", namespace, pod), container, line, self.now())

    def pod_log(
        self,
        namespace: str,
        pod: str,
        container: str | None = None,
        previous: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        since_time: datetime | None = None,
        timestamps: bool = False,
        limit_bytes: int | None = None,
    ) -> str:
        """The text `GET pods/{pod}/log` answers with."""
        with self.store.transaction():
            return self.kubelet.read_log(
                self._require("Pod", namespace, pod),
                container,
                self.now(),
                previous=previous,
                tail_lines=tail_lines,
                since_seconds=since_seconds,
                since_time=since_time,
                timestamps=timestamps,
                limit_bytes=limit_bytes,
            )

    def set_pod_usage(
        self, namespace: str, pod: str, cpu_m: int, memory_bytes: int, container: str | None = None
    ) -> None:
        """What metrics.k8s.io reports for the pod's container from now on."""
        with self.store.transaction():
            self.kubelet.set_usage(self._require("Pod", namespace, pod), container, cpu_m, memory_bytes)

    def restart_pod(
        self, namespace: str, pod: str, reason: str = "OOMKilled", container: str | None = None
    ) -> dict[str, Any]:
        """The container died (`reason`) and was restarted: restartCount + 1, lastState terminated,
        the old log becomes `--previous`. Returns the pod."""
        with self.store.transaction():
            obj = self._require("Pod", namespace, pod)
            self.kubelet.restart_container(obj, container, reason, self.now())
            return copy.deepcopy(obj)

    # ---- metrics.k8s.io ----

    def pod_metrics(
        self, namespace: str | None = None, name: str | None = None, label_selector: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        """PodMetrics of running pods; with `name`, that one pod's (404 if it has none)."""
        labels = parse_label_selector(label_selector)
        with self.store.transaction():
            now = self.now()
            out = []
            for pod in self.store.all("Pod", namespace):
                if name is not None and pod["metadata"]["name"] != name:
                    continue
                if not labels.matches(pod["metadata"].get("labels")):
                    continue
                m = self.kubelet.pod_metrics(pod, now)
                if m is not None:
                    out.append(m)
            if name is not None and not out:
                raise ApiError.not_found("pods", name, "metrics.k8s.io")
            return out

    def node_metrics(self, name: str | None = None) -> builtins.list[dict[str, Any]]:
        """NodeMetrics: each node's pods plus system overhead; with `name`, that node's (404 if unknown)."""
        with self.store.transaction():
            now = self.now()
            nodes = self.store.all("Node")
            if name is not None:
                nodes = [n for n in nodes if n["metadata"]["name"] == name]
                if not nodes:
                    raise ApiError.not_found("nodes", name, "metrics.k8s.io")
            return [self.kubelet.node_metrics(n, now) for n in nodes]
