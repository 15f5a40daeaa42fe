"""What the scheduler, the kubelet and metrics-server do for the emulator's pods.

Usage (through `Cluster`)::

    pod = kubelet.create_pod(replica_set, now)   # scheduled on the least busy node, Pending
    kubelet.sync_all(now)                         # start pods whose start delay passed; crash-loop restarts
    kubelet.read_log(pod, container=None, tail_lines=100, now=now)

A pod starts `pod_start_delay_s` after creation. A container whose image is bad (`Cluster.is_bad_image`)
crashes on start and goes CrashLoopBackOff, restarting with the kubelet's doubling back-off
(`crash_backoff_s`, capped at 30x) so `restartCount` climbs; a good one runs Ready. Logs are kept per
container instance (the current and the previous one, as `kubectl logs --previous` sees them).

The kubelet's side of a pod's life (start delay, crash back-off, restarts, readiness) is here; the
per-pod runtime record, and the logs and metrics read from it, are `sandbox.k8s.pod_runtime`.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.k8s.errors import ApiError
from sandbox.k8s.objects import fmt_time, parse_time
from sandbox.k8s.pod_runtime import ContainerRuntime, PodRuntime, PodRuntimes

if TYPE_CHECKING:
    from sandbox.k8s.cluster import Cluster

__all__ = ["Kubelet"]

_SAFE = "bcdfghjklmnpqrstvwxz2456789"
CONDITION_TYPES = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


class Kubelet(PodRuntimes):
    """Pod lifecycle, logs and resource usage for every pod of the emulated cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.runtime: dict[str, PodRuntime] = {}
        self._ip_seq = 10

    # ---- creation, scheduling ----

    def _pick_node(self) -> dict[str, Any]:
        nodes = self.store.all("Node")
        if not nodes:
            raise ApiError(500, "InternalError", "no nodes to schedule pods on")
        load = {n["metadata"]["name"]: 0 for n in nodes}
        for pod in self.store.all("Pod"):
            node_name = pod["spec"].get("nodeName")
            if node_name in load:
                load[node_name] += 1
        return min(nodes, key=lambda n: (load[n["metadata"]["name"]], n["metadata"]["name"]))

    def _suffix(self) -> str:
        return "".join(self.cluster.rng.choice(_SAFE) for _ in range(5))

    def create_pod(self, rs: dict[str, Any], now: datetime) -> dict[str, Any]:
        ns = rs["metadata"]["namespace"]
        while True:
            name = f"{rs['metadata']['name']}-{self._suffix()}"
            if self.store.get("Pod", ns, name) is None:
                break
        template = copy.deepcopy(rs["spec"]["template"])
        node = self._pick_node()
        spec = template["spec"]
        spec.update(
            {
                "nodeName": node["metadata"]["name"],
                "serviceAccountName": spec.get("serviceAccountName", "default"),
                "serviceAccount": spec.get("serviceAccountName", "default"),
                "enableServiceLinks": True,
                "preemptionPolicy": "PreemptLowerPriority",
                "priority": 0,
                "tolerations": [
                    {
                        "key": f"node.kubernetes.io/{t}",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    }
                    for t in ("not-ready", "unreachable")
                ],
            }
        )
        meta: dict[str, Any] = {
            "name": name,
            "generateName": f"{rs['metadata']['name']}-",
            "namespace": ns,
            "uid": self.cluster.new_uid(),
            "creationTimestamp": fmt_time(now),
            "labels": dict(template["metadata"].get("labels") or {}),
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs["metadata"]["name"],
                    "uid": rs["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if template["metadata"].get("annotations"):
            meta["annotations"] = dict(template["metadata"]["annotations"])
        host_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        self._ip_seq += 1
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": spec,
            "status": {
                "hostIP": host_ip,
                "hostIPs": [{"ip": host_ip}],
                "podIP": f"10.244.{self._ip_seq // 250}.{self._ip_seq % 250 + 2}",
                "startTime": fmt_time(now),
                "qosClass": "Burstable",
            },
        }
        pod["status"]["podIPs"] = [{"ip": pod["status"]["podIP"]}]
        self.runtime[meta["uid"]] = PodRuntime(
            {
                c["name"]: ContainerRuntime(
                    c["name"],
                    c.get("image", ""),
                    cpu_m=self.cluster.default_cpu_m,
                    memory_bytes=self.cluster.default_memory_bytes,
                )
                for c in spec.get("containers") or []
            }
        )
        self._render(pod, now)
        self.store.put("Pod", pod, "ADDED")
        self.cluster.record_event(
            pod,
            "Scheduled",
            f"Successfully assigned {ns}/{name} to {node['metadata']['name']}",
            now=now,
            component="default-scheduler",
            series_style=True,
        )
        return pod

    # ---- lifecycle ----

    def sync_all(self, now: datetime, instant: bool = False) -> None:
        delay = timedelta(seconds=self.cluster.pod_start_delay_s)
        for pod in list(self.store.all("Pod")):
            rt = self.runtime.get(pod["metadata"]["uid"])
            if rt is None:
                continue
            changed = False
            created = parse_time(pod["metadata"]["creationTimestamp"])
            for c in rt.containers.values():
                if c.state == "creating" and (instant or now - created >= delay):
                    self._start_container(pod, rt, c, now)
                    changed = True
            if rt.next_restart_at is not None and now >= rt.next_restart_at:
                for c in rt.containers.values():
                    if c.state == "crashloop":
                        self._crash_again(pod, rt, c, now)
                changed = True
            if changed:
                self._render(pod, now)
                self.store.put("Pod", pod)

    def _new_container_id(self) -> str:
        return "containerd://" + "".join(self.cluster.rng.choice("0123456789abcdef") for _ in range(64))

    def _start_container(
        self, pod: dict[str, Any], rt: PodRuntime, c: ContainerRuntime, now: datetime
    ) -> None:
        for reason, message in (
            ("Pulled", f'Container image "{c.image}" already present on machine'),
            ("Created", f"Created container: {c.name}"),
            ("Started", f"Started container {c.name}"),
        ):
            self.cluster.record_event(pod, reason, message, now=now, component="kubelet", field_path=c.name)
        c.container_id = self._new_container_id()
        c.started_at = now
        c.logs.append((now, f"INFO starting {c.name} (image {c.image})"))
        if not self.cluster.is_bad_image(c.image):
            c.state = "running"
            return
        # A bad image: the process dies at start; the kubelet restarts it once, it dies again,
        # and from then on it is in CrashLoopBackOff.
        c.logs.append((now, "ERROR fatal: application failed to start: exiting with code 1"))
        c.previous_logs = list(c.logs)
        c.restart_count = 1
        self._terminate(c, now, "Error", 1)
        c.logs = [
            (now, f"INFO starting {c.name} (image {c.image})"),
            (now, "ERROR fatal: application failed to start: exiting with code 1"),
        ]
        c.state = "crashloop"
        rt.next_restart_at = now + self._backoff(c.restart_count)
        self.cluster.record_event(
            pod,
            "BackOff",
            f"Back-off restarting failed container {c.name} in pod "
            f"{pod['metadata']['name']}_{pod['metadata']['namespace']}({pod['metadata']['uid']})",
            type_="Warning",
            now=now,
            component="kubelet",
            field_path=c.name,
        )

    def _backoff(self, restarts: int) -> timedelta:
        base = self.cluster.crash_backoff_s
        return timedelta(seconds=min(base * 2 ** max(restarts - 1, 0), base * 30))

    def _terminate(self, c: ContainerRuntime, now: datetime, reason: str, exit_code: int) -> None:
        c.last_terminated = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": fmt_time(c.started_at or now),
            "finishedAt": fmt_time(now),
            "containerID": c.container_id,
        }

    def _crash_again(self, pod: dict[str, Any], rt: PodRuntime, c: ContainerRuntime, now: datetime) -> None:
        c.restart_count += 1
        c.started_at = now
        c.container_id = self._new_container_id()
        c.previous_logs = c.logs
        c.logs = [
            (now, f"INFO starting {c.name} (image {c.image})"),
            (now, "ERROR fatal: application failed to start: exiting with code 1"),
        ]
        self._terminate(c, now, "Error", 1)
        rt.next_restart_at = now + self._backoff(c.restart_count)
        self.cluster.record_event(
            pod,
            "BackOff",
            f"Back-off restarting failed container {c.name} in pod "
            f"{pod['metadata']['name']}_{pod['metadata']['namespace']}({pod['metadata']['uid']})",
            type_="Warning",
            now=now,
            component="kubelet",
            field_path=c.name,
        )

    def restart_container(
        self, pod: dict[str, Any], container: str | None, reason: str, now: datetime
    ) -> None:
        """The container died (`reason`, e.g. OOMKilled) and the kubelet started it again."""
        rt = self._rt(pod)
        c = self._container(pod, rt, container)
        if c.state == "creating":
            raise ApiError.bad_request(
                f'container "{c.name}" in pod "{pod["metadata"]["name"]}" has not started'
            )
        self._terminate(c, now, reason, 137 if reason == "OOMKilled" else 1)
        c.restart_count += 1
        c.previous_logs = c.logs
        c.logs = []
        c.container_id = self._new_container_id()
        c.started_at = now
        if c.state == "running":
            c.logs.append((now, f"INFO starting {c.name} (image {c.image})"))
            for r, message in (
                ("Pulled", f'Container image "{c.image}" already present on machine'),
                ("Created", f"Created container: {c.name}"),
                ("Started", f"Started container {c.name}"),
            ):
                self.cluster.record_event(pod, r, message, now=now, component="kubelet", field_path=c.name)
        self._render(pod, now)
        self.store.put("Pod", pod)

    def delete_pod(self, pod: dict[str, Any], now: datetime) -> None:
        for c in pod["spec"].get("containers") or []:
            self.cluster.record_event(
                pod,
                "Killing",
                f"Stopping container {c['name']}",
                now=now,
                component="kubelet",
                field_path=c["name"],
            )
        self.runtime.pop(pod["metadata"]["uid"], None)
        self.store.remove("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])

    def _render(self, pod: dict[str, Any], now: datetime) -> None:
        rt = self._rt(pod)
        statuses = []
        for c in rt.containers.values():
            cs: dict[str, Any] = {
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": c.state == "running",
                "restartCount": c.restart_count,
                "started": c.state == "running",
                "lastState": {"terminated": dict(c.last_terminated)} if c.last_terminated else {},
            }
            if c.state == "creating":
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
            else:
                cs["imageID"] = f"{c.image.rsplit(':', 1)[0]}@sha256:{c.container_id[-64:]}"
                cs["containerID"] = c.container_id
                if c.state == "running":
                    cs["state"] = {"running": {"startedAt": fmt_time(c.started_at or now)}}
                else:
                    seconds = int(self._backoff(c.restart_count).total_seconds())
                    cs["state"] = {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {seconds}s restarting failed container={c.name} "
                            f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}({pod['metadata']['uid']})",
                        }
                    }
            statuses.append(cs)
        creating = any(c.state == "creating" for c in rt.containers.values())
        unready = [c.name for c in rt.containers.values() if c.state != "running"]
        want = {
            "PodReadyToStartContainers": ("False" if creating else "True", None),
            "Initialized": ("True", None),
            "Ready": ("False", "ContainersNotReady") if unready else ("True", None),
            "ContainersReady": ("False", "ContainersNotReady") if unready else ("True", None),
            "PodScheduled": ("True", None),
        }
        conditions = []
        for ctype in CONDITION_TYPES:
            value, reason = want[ctype]
            prev = rt.conditions.get(ctype)
            if prev is None or prev[0] != value:
                rt.conditions[ctype] = (value, now)
            cond: dict[str, Any] = {
                "type": ctype,
                "status": value,
                "lastProbeTime": None,
                "lastTransitionTime": fmt_time(rt.conditions[ctype][1]),
            }
            if reason:
                cond["reason"] = reason
                cond["message"] = f"containers with unready status: [{' '.join(unready)}]"
            conditions.append(cond)
        status = pod["status"]
        status["phase"] = "Pending" if creating else "Running"
        status["conditions"] = conditions
        status["containerStatuses"] = statuses

    def is_ready(self, pod: dict[str, Any]) -> bool:
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions") or []
        )

    def is_available(self, pod: dict[str, Any], min_ready_s: int, now: datetime) -> bool:
        if not self.is_ready(pod):
            return False
        if min_ready_s <= 0:
            return True
        since = self._rt(pod).conditions["Ready"][1]
        return now - since >= timedelta(seconds=min_ready_s)

    def deletion_rank(self, pod: dict[str, Any]) -> tuple[Any, ...]:
        """Which pods a scale-down removes first (`controller.ActivePodsWithRanks`): unscheduled, pending,
        not ready, ready for the shortest time, most restarts, newest."""
        phase_order = {"Pending": 0, "Unknown": 1, "Running": 2}
        rt = self.runtime.get(pod["metadata"]["uid"])
        ready_since = rt.conditions.get("Ready", ("", None))[1] if rt else None
        restarts = sum(c.restart_count for c in rt.containers.values()) if rt else 0
        return (
            1 if pod["spec"].get("nodeName") else 0,
            phase_order.get(pod.get("status", {}).get("phase", "Pending"), 0),
            1 if self.is_ready(pod) else 0,
            -(ready_since.timestamp() if ready_since and self.is_ready(pod) else 0),
            -restarts,
            -parse_time(pod["metadata"]["creationTimestamp"]).timestamp(),
        )
