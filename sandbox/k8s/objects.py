"""Builders of complete, realistic API objects (plain dicts in the API's JSON shape) and the API defaults.

Usage::

    dep = deployment("prod", "web", "registry.local/web:1.4.2", replicas=2, env={"DB_POOL_SIZE": "20"})
    apply_deployment_defaults(dep)          # what the API server fills in on every write
    h = template_hash(dep["spec"]["template"])   # the `pod-template-hash` label value

The official client deserialises responses into pydantic models and rejects objects missing required
fields, so everything here is as complete as a real API server's answer.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "REVISION",
    "REVISION_HISTORY",
    "SKIP_ANNOTATIONS",
    "apply_deployment_defaults",
    "deployment",
    "fmt_micro",
    "fmt_nano",
    "fmt_time",
    "human_duration",
    "node",
    "parse_time",
    "pod_template_equal",
    "template_hash",
]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
# Annotations the deployment controller never copies from a Deployment to its ReplicaSets
# (kubernetes pkg/controller/deployment/util: annotationsToSkip); kubectl's rollback keeps the same set.
SKIP_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)


# ---- time -------------------------------------------------------------------------------------------


def fmt_time(t: datetime) -> str:
    """RFC 3339 with seconds, as in `metadata.creationTimestamp`: 2026-07-01T12:00:00Z."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_micro(t: datetime) -> str:
    """RFC 3339 with microseconds (`MicroTime`, e.g. an Event's eventTime)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fmt_nano(t: datetime) -> str:
    """RFC 3339 with nanoseconds, the kubelet's log timestamp prefix."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (Z or offset, any fraction) into an aware datetime."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base, frac, zone = m.groups()
    frac = (frac or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{base}.{frac}{'+00:00' if zone == 'Z' else zone}").astimezone(UTC)


def human_duration(d: timedelta) -> str:
    """The AGE column's format (apimachinery `duration.HumanDuration`): 45s, 5m10s, 3h, 2d4h, 400d."""
    seconds = int(d.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h{m}m" if m else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d{h}h" if h else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = hours // 24 % 365
        return f"{hours // 24 // 365}y{dy}d" if dy else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


# ---- hashing and template comparison ----------------------------------------------------------------

_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """The `pod-template-hash` of a pod template: fnv32a, rendered like `rand.SafeEncodeString`."""
    t = copy.deepcopy(template)
    t.get("metadata", {}).get("labels", {}).pop(HASH_LABEL, None)
    data = json.dumps(t, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(_fnv32a(data)))


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template)
    labels = t.setdefault("metadata", {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
    t["metadata"].pop("creationTimestamp", None)
    return t


def pod_template_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal pod templates, ignoring the `pod-template-hash` label (deployment util `EqualIgnoreHash`)."""
    return _without_hash(a) == _without_hash(b)


# ---- defaults (what the API server fills in on every write) -----------------------------------------


def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _probe_defaults(probe: dict[str, Any]) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if "httpGet" in probe:
        probe["httpGet"].setdefault("scheme", "HTTP")


def apply_pod_template_defaults(template: dict[str, Any]) -> None:
    """`SetDefaults_PodSpec` and friends for the fields the emulated objects use."""
    template.setdefault("metadata", {})
    spec = template.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in spec.get("containers") or []:
        if not isinstance(c, dict):
            continue
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        if isinstance(c.get("image"), str):
            c.setdefault("imagePullPolicy", _image_pull_policy(c["image"]))
        c.setdefault("resources", {})
        for port in c.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
        for key in ("readinessProbe", "livenessProbe", "startupProbe"):
            if isinstance(c.get(key), dict):
                _probe_defaults(c[key])


def apply_deployment_defaults(dep: dict[str, Any]) -> None:
    """apps/v1 `SetDefaults_Deployment`: replicas 1, RollingUpdate 25%/25%, history 10, deadline 600 s."""
    spec = dep.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    if isinstance(spec.get("template"), dict):
        apply_pod_template_defaults(spec["template"])


# ---- builders ---------------------------------------------------------------------------------------


def deployment(
    namespace: str,
    name: str,
    image: str,
    replicas: int = 2,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    container_port: int = 8080,
) -> dict[str, Any]:
    """A Deployment manifest as a team would write it: one container, requests/limits, probes, env."""
    pod_labels = {"app": name, **(labels or {})}
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "ports": [{"name": "http", "containerPort": container_port}],
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": 10},
    }
    if not container["env"]:
        del container["env"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(pod_labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": pod_labels}, "spec": {"containers": [container]}},
        },
    }


def node(
    name: str, created: datetime, cpu: str = "4", memory: str = "16Gi", address: str = "10.0.0.10"
) -> dict:
    """A Ready worker Node, as a kubeadm cluster would report it."""
    ts = fmt_time(created)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "102400Mi"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "94372Mi"},
            "conditions": [
                {
                    "type": t,
                    "status": "False",
                    "lastHeartbeatTime": ts,
                    "lastTransitionTime": ts,
                    "reason": reason,
                    "message": message,
                }
                for t, reason, message in (
                    (
                        "MemoryPressure",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                    ),
                    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                )
            ]
            + [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastHeartbeatTime": ts,
                    "lastTransitionTime": ts,
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": _fake_hex(name, 32),
                "systemUUID": _fake_hex(name + "uuid", 32),
                "bootID": _fake_hex(name + "boot", 32),
                "kernelVersion": "6.1.0-28-amd64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": "v1.32.4",
                "kubeProxyVersion": "v1.32.4",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def _fake_hex(seed: str, n: int) -> str:
    out = ""
    i = 0
    while len(out) < n:
        out += f"{_fnv32a(f'{seed}{i}'.encode()):08x}"
        i += 1
    return out[:n]
