"""`kubectl logs deployment/X`: the pod kubectl picks (its ByLogging order) and that pod's log.

Usage::

    deployment_logs(api, web, tail_lines=100, grep="out of memory").matches
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api, V1Pod

from kubeops.errors import NoPodsFound, api_call
from kubeops.models import DeploymentLogs, Workload
from kubeops.objects import aware, created_at, label_selector_string, name_of, pick_container, read_deployment
from tasks.clients import request_timeout_s


def _ready_condition(pod: V1Pod) -> Any:
    conditions = (pod.status.conditions if pod.status else None) or []
    return next((c for c in conditions if c.type == "Ready" and c.status == "True"), None)


def _is_ready(pod: V1Pod) -> bool:
    """podutils.IsPodReady: the Ready condition is True."""
    return _ready_condition(pod) is not None


def _ready_since(pod: V1Pod) -> datetime | None:
    """podReadyTime: when the Ready condition last turned True (None: zero time)."""
    cond = _ready_condition(pod)
    return aware(cond.last_transition_time) if cond is not None else None


def _after_or_zero(t1: datetime | None, t2: datetime | None) -> bool:
    """podutils.afterOrZero: a zero time sorts last."""
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _max_restarts(pod: V1Pod) -> tuple[int, int]:
    status, spec = pod.status, pod.spec
    regular = max(
        [c.restart_count or 0 for c in (status.container_statuses if status else None) or []], default=0
    )
    sidecars = {
        c.name for c in (spec.init_containers if spec else None) or [] if c.restart_policy == "Always"
    }
    sidecar = max(
        [
            c.restart_count or 0
            for c in (status.init_container_statuses if status else None) or []
            if c.name in sidecars
        ],
        default=0,
    )
    return regular, sidecar


_PHASE_ORDER = {"Running": 0, "Unknown": 1, "Pending": 2}


def _by_logging_less(a: V1Pod, b: V1Pod) -> bool:
    """podutils.ByLogging.Less: the pod `kubectl logs deployment/X` prefers sorts first."""
    node_a = (a.spec.node_name if a.spec else None) or ""
    node_b = (b.spec.node_name if b.spec else None) or ""
    # 1. assigned before unassigned
    if node_a != node_b and (not node_a or not node_b):
        return bool(node_a)
    # 2. Running < Unknown < Pending (any other phase counts as Running, as Go's map lookup does)
    phase_a = _PHASE_ORDER.get((a.status.phase if a.status else None) or "", 0)
    phase_b = _PHASE_ORDER.get((b.status.phase if b.status else None) or "", 0)
    if phase_a != phase_b:
        return phase_a < phase_b
    # 3. ready before not ready
    ready_a, ready_b = _is_ready(a), _is_ready(b)
    if ready_a != ready_b:
        return ready_a
    # 4. ready for longer first
    if ready_a and ready_b:
        since_a, since_b = _ready_since(a), _ready_since(b)
        if since_a != since_b:
            return _after_or_zero(since_b, since_a)
    # 5. more restarts first
    restarts_a, restarts_b = _max_restarts(a), _max_restarts(b)
    if restarts_a[0] != restarts_b[0]:
        return restarts_a[0] > restarts_b[0]
    if restarts_a[1] != restarts_b[1]:
        return restarts_a[1] > restarts_b[1]
    # 6. older first
    created_a, created_b = created_at(a), created_at(b)
    if created_a != created_b:
        return _after_or_zero(created_b, created_a)
    return False


def _by_logging(a: V1Pod, b: V1Pod) -> int:
    if _by_logging_less(a, b):
        return -1
    return 1 if _by_logging_less(b, a) else 0


def _last_killed_for_memory(pod: V1Pod) -> bool:
    statuses = (pod.status.container_statuses if pod.status else None) or []
    return any(
        c.last_state is not None
        and c.last_state.terminated is not None
        and c.last_state.terminated.reason == "OOMKilled"
        for c in statuses
    )


def _restarted_first(pods: list[V1Pod]) -> list[V1Pod]:
    """For `--previous`: only the pods that have a previous container, the ones last killed for memory
    first. kubectl's own pick prefers the pod Ready for longest, which after an OOM kill is usually the
    one that never restarted: `kubectl logs deployment/X --previous` then fails ("previous terminated
    container not found") while the restarted pod holds the last words. Falls back to every pod (and
    kubectl's error) when none restarted."""
    restarted = [p for p in pods if _max_restarts(p)[0] > 0 or _max_restarts(p)[1] > 0]
    killed = [p for p in restarted if _last_killed_for_memory(p)]
    return killed or restarted or pods


def choose_log_pod(pods: list[V1Pod]) -> V1Pod | None:
    """The first pod in kubectl's ByLogging order, or None for an empty list."""
    ordered = sorted(pods, key=functools.cmp_to_key(_by_logging))
    return ordered[0] if ordered else None


def deployment_logs(
    api: ApiClient,
    workload: Workload,
    tail_lines: int | None = 100,
    grep: str | None = None,
    previous: bool = False,
) -> DeploymentLogs:
    """`kubectl logs deployment/X --tail=100 [-c C] [--previous]`, optionally filtered by a regex.

    The pod is the one kubectl picks (pods matching the selector, ByLogging order), except with
    `previous`: then among the pods that restarted, the last killed for memory first (`_restarted_first`
    says why); the container is the
    workload's, else the pod's default-container annotation's, else the first. `grep` is searched
    case-insensitively; the matching lines come back in `matches`. `tail_lines=None` reads the whole log.
    """
    pattern = None
    if grep is not None:
        try:
            pattern = re.compile(grep, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"grep: not a valid regular expression ({exc})") from exc
    if tail_lines is not None and tail_lines < 0:
        raise ValueError(f"tail_lines must be >= 0 or None (got {tail_lines})")
    dep = read_deployment(api, workload)
    selector = label_selector_string(dep.spec.selector if dep.spec else None)
    core = CoreV1Api(api)
    with api_call(f"listing pods of {workload}"):
        pods = core.list_namespaced_pod(
            workload.namespace, label_selector=selector, _request_timeout=request_timeout_s(api)
        ).items
    pod = choose_log_pod(_restarted_first(pods) if previous else pods)
    if pod is None:
        raise NoPodsFound(
            f'no pods found for deployment "{workload.name}" in namespace "{workload.namespace}"'
        )
    pod_name = name_of(pod)
    containers = (pod.spec.containers if pod.spec else None) or []
    annotations = (pod.metadata.annotations if pod.metadata else None) or {}
    container = pick_container(containers, annotations, workload, f"pod {pod_name}")
    with api_call(f"reading the log of pod {pod_name} ({container.name})"):
        text = core.read_namespaced_pod_log(
            pod_name,
            workload.namespace,
            container=container.name,
            tail_lines=tail_lines,
            previous=previous or None,
            _request_timeout=request_timeout_s(api),
        )
    lines = str(text or "").splitlines()
    return DeploymentLogs(
        workload=workload,
        pod=pod_name,
        container=container.name,
        lines=lines,
        pattern=grep,
        matches=[line for line in lines if pattern.search(line)] if pattern else [],
    )
