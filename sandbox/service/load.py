"""Memory and CPU of the app's pods: what they consume each step, reported to metrics.k8s.io, and
what happens at the limits (OOMKilled, throttling, a failing liveness probe).

Usage::

    resources = PodResources(cluster, "prod", "emotionscare", capture=app_capture)
    resources.load.memory_leak_bytes_per_step = 8 * 1024 * 1024     # the memory-leak fault
    resources.step(ready_pods)                                        # once per step interval
    resources.cpu_pressure(ready_pods)                                # 0..1, for throttling
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sandbox.k8s import ApiError, Cluster

__all__ = ["Load", "PodResources"]


class Capture(Protocol):
    def __call__(
        self,
        exc_type: str,
        message: str,
        frames: str,
        level: str = "error",
        tags: Mapping[str, str] | None = None,
    ) -> None: ...


@dataclass
class _PodLoad:
    leaked_bytes: float = 0.0
    cpu_m: float = 0.0
    saturated_steps: int = 0
    memory_band: int = 0


@dataclass
class Load:
    """What the app's pods consume, reported to metrics.k8s.io each step.

    - `memory_leak_bytes_per_step`: the leak, shared by the Ready pods (it follows the traffic, so
      more replicas slow it per pod: the guide's temporary relief). A pod reaching its memory limit
      logs the Node.js heap-exhaustion lines and is restarted with reason `OOMKilled`.
    - `cpu_demand_m`: extra CPU the app needs, shared by the Ready pods; each pod's usage climbs
      `cpu_climb_m` per step towards its share, capped at its limit. At the limit requests are
      throttled (`cpu_throttle_ms` added) and, after `liveness_fail_steps` steps, the liveness probe
      fails and the kubelet restarts the container (reason `Error`). Three replicas instead of two
      bring the default demand under the limit.
    """

    baseline_cpu_m: int = 40
    baseline_memory_bytes: int = 160 * 1024 * 1024
    memory_leak_bytes_per_step: float = 0.0
    cpu_demand_m: float = 0.0
    cpu_climb_m: float = 150.0
    cpu_throttle_ms: float = 400.0
    liveness_fail_steps: int = 20
    pods: dict[str, _PodLoad] = field(default_factory=dict)

    def clear(self) -> None:
        self.memory_leak_bytes_per_step = 0.0
        self.cpu_demand_m = 0.0
        self.pods.clear()


class PodResources:
    """Steps `load` over the Deployment's Ready pods; `capture` reports an OOM to Sentry."""

    def __init__(self, cluster: Cluster, namespace: str, deployment: str, capture: Capture) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.deployment = deployment
        self.capture = capture
        self.load = Load()

    def step(self, ready: list[str]) -> None:
        """One resource step: memory and CPU of each Ready pod, OOM kills, liveness restarts."""
        load = self.load
        if not ready:
            return
        share = 2.0 / len(ready)  # the default two replicas carry the load the rates are given for
        limit_bytes = self._memory_limit_bytes()
        limit_m = self._cpu_limit_m()
        for name in list(load.pods):
            if name not in ready:
                del load.pods[name]
        for name in ready:
            pod = load.pods.setdefault(name, _PodLoad(cpu_m=float(load.baseline_cpu_m)))
            pod.leaked_bytes += load.memory_leak_bytes_per_step * share
            target_m = load.baseline_cpu_m + load.cpu_demand_m * share / 2.0
            if pod.cpu_m < target_m:
                pod.cpu_m = min(target_m, pod.cpu_m + load.cpu_climb_m)
            else:
                pod.cpu_m = max(target_m, pod.cpu_m - load.cpu_climb_m)
            pod.cpu_m = min(pod.cpu_m, float(limit_m))
            memory = int(load.baseline_memory_bytes + pod.leaked_bytes)
            try:
                self._pod_step(name, pod, memory, limit_bytes, limit_m)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                load.pods.pop(name, None)  # the pod went away meanwhile

    def _pod_step(self, name: str, pod: _PodLoad, memory: int, limit_bytes: int, limit_m: int) -> None:
        ns = self.namespace
        mib = memory // (1024 * 1024)
        limit_mib = limit_bytes // (1024 * 1024)
        if memory >= limit_bytes:
            for line in (
                f"ERROR FATAL: OutOfMemory: heap {mib}MiB reached the container limit {limit_mib}MiB",
                "<--- Last few GCs --->",
                f"[1:0x55d1c4e0]  Mark-sweep {mib - 4}.1 ({mib}.6) -> {mib - 5}.9 ({mib}.9) MB, "
                "812.3 / 0.0 ms  (average mu = 0.112, current mu = 0.021) allocation failure",
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            ):
                self.cluster.append_pod_log(ns, name, line)
            self.capture(
                "FatalError", "JavaScript heap out of memory", "oom", level="fatal", tags={"pod": name}
            )
            self.cluster.restart_pod(ns, name, reason="OOMKilled")
            self.load.pods[name] = _PodLoad(cpu_m=float(self.load.baseline_cpu_m))
            self.cluster.set_pod_usage(
                ns, name, int(self.load.baseline_cpu_m), self.load.baseline_memory_bytes
            )
            return
        band = int(10 * memory / limit_bytes)
        if band >= 5 and band > pod.memory_band:  # every 10% from half the limit
            self.cluster.append_pod_log(
                ns,
                name,
                f"WARN memory usage high: heap {mib}MiB of {limit_mib}MiB ({100 * memory // limit_bytes}%)",
            )
        pod.memory_band = band
        if pod.cpu_m >= 0.95 * limit_m:
            pod.saturated_steps += 1
            self.cluster.append_pod_log(
                ns,
                name,
                f"WARN event loop blocked for {int(self.load.cpu_throttle_ms * 3)}ms (cpu {int(pod.cpu_m)}m)",
            )
            if pod.saturated_steps >= self.load.liveness_fail_steps:
                self.cluster.append_pod_log(
                    ns, name, "ERROR liveness probe timed out: GET /health (timeout 1s)"
                )
                self.cluster.restart_pod(ns, name, reason="Error")
                pod.saturated_steps = 0
        else:
            pod.saturated_steps = 0
        self.cluster.set_pod_usage(ns, name, int(pod.cpu_m), memory)

    def cpu_pressure(self, ready: list[str]) -> float:
        """0..1: how far the busiest Ready pod is from idle to its CPU limit (for throttling)."""
        pods = [self.load.pods.get(n) for n in ready]
        limit = self._cpu_limit_m()
        used = max((p.cpu_m for p in pods if p is not None), default=0.0)
        return max(0.0, min(1.0, (used - 0.8 * limit) / (0.2 * limit)))

    def _container(self) -> dict[str, Any]:
        dep = self.cluster.get("Deployment", self.namespace, self.deployment)
        return dict(dep["spec"]["template"]["spec"]["containers"][0])

    def _memory_limit_bytes(self) -> int:
        limits = (self._container().get("resources") or {}).get("limits") or {}
        return _quantity_bytes(str(limits.get("memory", "512Mi")))

    def _cpu_limit_m(self) -> int:
        limits = (self._container().get("resources") or {}).get("limits") or {}
        return _quantity_millicores(str(limits.get("cpu", "1")))


def _quantity_bytes(raw: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}
    for suffix, factor in units.items():
        if raw.endswith(suffix):
            return int(float(raw[: -len(suffix)]) * factor)
    return int(float(raw))


def _quantity_millicores(raw: str) -> int:
    if raw.endswith("m"):
        return int(raw[:-1])
    return int(float(raw) * 1000)
