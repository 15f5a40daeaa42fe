"""The kubelet's per-pod runtime record (each container's state, restarts, logs and usage) and what is
read from it: container logs as `kubectl logs` sees them (current and previous instance, tail, since,
timestamps, byte limit) and the usage metrics-server reports for pods and nodes.

`Kubelet` (sandbox/k8s/kubelet.py) mixes `PodRuntimes` in and drives the lifecycle that fills the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.k8s.errors import ApiError
from sandbox.k8s.objects import fmt_nano, fmt_time

if TYPE_CHECKING:
    from sandbox.k8s.store import ObjectStore

__all__ = ["ContainerRuntime", "PodRuntime", "PodRuntimes"]


@dataclass
class ContainerRuntime:
    name: str
    image: str
    state: str = "creating"  # creating | running | crashloop
    restart_count: int = 0
    container_id: str = ""
    started_at: datetime | None = None
    last_terminated: dict[str, Any] | None = None
    logs: list[tuple[datetime, str]] = field(default_factory=list)
    previous_logs: list[tuple[datetime, str]] | None = None
    cpu_m: int = 0
    memory_bytes: int = 0


@dataclass
class PodRuntime:
    containers: dict[str, ContainerRuntime]
    next_restart_at: datetime | None = None
    conditions: dict[str, tuple[str, datetime]] = field(default_factory=dict)


class PodRuntimes:
    """The runtime records by pod UID, and the logs and metrics read from them (a mixin of `Kubelet`,
    which sets `runtime` and `store`)."""

    runtime: dict[str, PodRuntime]
    store: ObjectStore

    # ---- lookup ----

    def _rt(self, pod: dict[str, Any]) -> PodRuntime:
        return self.runtime[pod["metadata"]["uid"]]

    def _container(self, pod: dict[str, Any], rt: PodRuntime, container: str | None) -> ContainerRuntime:
        name = pod["metadata"]["name"]
        if container is None:
            if len(rt.containers) != 1:
                names = " ".join(rt.containers)
                raise ApiError.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{names}]"
                )
            return next(iter(rt.containers.values()))
        if container not in rt.containers:
            raise ApiError.bad_request(f"container {container} is not valid for pod {name}")
        return rt.containers[container]

    # ---- logs ----

    def append_log(self, pod: dict[str, Any], container: str | None, line: str, now: datetime) -> None:
        c = self._container(pod, self._rt(pod), container)
        c.logs.append((now, line.rstrip("\n")))

    def read_log(
        self,
        pod: dict[str, Any],
        container: str | None,
        now: datetime,
        previous: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        since_time: datetime | None = None,
        timestamps: bool = False,
        limit_bytes: int | None = None,
    ) -> str:
        c = self._container(pod, self._rt(pod), container)
        name = pod["metadata"]["name"]
        if previous:
            if c.previous_logs is None:
                raise ApiError.bad_request(
                    f'previous terminated container "{c.name}" in pod "{name}" not found'
                )
            lines = c.previous_logs
        else:
            if c.state == "creating":
                raise ApiError.bad_request(
                    f'container "{c.name}" in pod "{name}" is waiting to start: ContainerCreating'
                )
            lines = c.logs
        if since_seconds is not None:
            since_time = now - timedelta(seconds=since_seconds)
        if since_time is not None:
            lines = [entry for entry in lines if entry[0] >= since_time]
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines > 0 else []
        text = "".join(f"{fmt_nano(t) + ' ' if timestamps else ''}{line}\n" for t, line in lines)
        if limit_bytes is not None:
            text = text.encode()[:limit_bytes].decode(errors="ignore")
        return text

    # ---- usage and metrics ----

    def set_usage(self, pod: dict[str, Any], container: str | None, cpu_m: int, memory_bytes: int) -> None:
        c = self._container(pod, self._rt(pod), container)
        c.cpu_m = cpu_m
        c.memory_bytes = memory_bytes

    def pod_metrics(self, pod: dict[str, Any], now: datetime) -> dict[str, Any] | None:
        """The PodMetrics metrics-server reports: running containers only; None if none runs."""
        rt = self.runtime.get(pod["metadata"]["uid"])
        if rt is None:
            return None
        running = [c for c in rt.containers.values() if c.state == "running"]
        if not running:
            return None
        return {
            "kind": "PodMetrics",
            "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {
                "name": pod["metadata"]["name"],
                "namespace": pod["metadata"]["namespace"],
                "creationTimestamp": fmt_time(now),
                "labels": dict(pod["metadata"].get("labels") or {}),
            },
            "timestamp": fmt_time(now),
            "window": "15s",
            "containers": [
                {
                    "name": c.name,
                    "usage": {"cpu": f"{c.cpu_m * 1_000_000}n", "memory": f"{c.memory_bytes // 1024}Ki"},
                }
                for c in running
            ],
        }

    def node_usage(self, node_name: str) -> tuple[int, int]:
        """(cpu millicores, memory bytes) on a node: its pods plus the system's own share."""
        cpu_m, memory = 120, 900 * 1024 * 1024
        for pod in self.store.all("Pod"):
            if pod["spec"].get("nodeName") != node_name:
                continue
            rt = self.runtime.get(pod["metadata"]["uid"])
            for c in rt.containers.values() if rt else []:
                if c.state == "running":
                    cpu_m += c.cpu_m
                    memory += c.memory_bytes
        return cpu_m, memory

    def node_metrics(self, node: dict[str, Any], now: datetime) -> dict[str, Any]:
        cpu_m, memory = self.node_usage(node["metadata"]["name"])
        return {
            "kind": "NodeMetrics",
            "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {
                "name": node["metadata"]["name"],
                "creationTimestamp": fmt_time(now),
                "labels": dict(node["metadata"].get("labels") or {}),
            },
            "timestamp": fmt_time(now),
            "window": "20s",
            "usage": {"cpu": f"{cpu_m * 1_000_000}n", "memory": f"{memory // 1024}Ki"},
        }
