"""Deployment status: replica counts, the Available and Progressing conditions, the progress deadline.

Follows kubernetes `pkg/controller/deployment` sync.go (`calculateStatus`) and progress.go
(`syncRolloutStatus`, `DeploymentComplete`, `DeploymentProgressing`, `DeploymentTimedOut`). Plain
functions: they read the Deployment and its ReplicaSets and write only `dep["status"]`.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from sandbox.k8s.controller.util import (
    NEW_RS_AVAILABLE,
    PAUSED,
    RESUMED,
    RS_UPDATED,
    TIMED_OUT,
    fenceposts,
    get_condition,
    new_condition,
    set_condition,
    set_or_drop,
    spec_replicas,
    sum_status,
)
from sandbox.k8s.objects import parse_time

__all__ = [
    "calculate_status",
    "check_paused_conditions",
    "complete",
    "progressing",
    "sync_rollout_status",
    "timed_out",
]


def check_paused_conditions(dep: dict[str, Any], now: datetime) -> None:
    """`checkPausedConditions`: Progressing becomes Unknown/DeploymentPaused or DeploymentResumed."""
    if not dep["spec"].get("progressDeadlineSeconds"):
        return
    status = dep.setdefault("status", {})
    cond = get_condition(status, "Progressing")
    paused_cond = cond is not None and cond.get("reason") == PAUSED
    if dep["spec"].get("paused") and not paused_cond:
        set_condition(status, new_condition("Progressing", "Unknown", PAUSED, "Deployment is paused", now))
    elif not dep["spec"].get("paused") and paused_cond:
        set_condition(status, new_condition("Progressing", "Unknown", RESUMED, "Deployment is resumed", now))


def complete(dep: dict[str, Any], status: dict[str, Any]) -> bool:
    """`DeploymentComplete`: every replica updated and available, and the spec observed."""
    replicas = int(dep["spec"]["replicas"])
    return (
        int(status.get("updatedReplicas", 0)) == replicas
        and int(status.get("replicas", 0)) == replicas
        and int(status.get("availableReplicas", 0)) == replicas
        and int(status.get("observedGeneration", 0)) >= int(dep["metadata"]["generation"])
    )


def calculate_status(
    dep: dict[str, Any], all_rs: list[dict[str, Any]], new_rs: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """`calculateStatus`: the replica counts over `all_rs` and the Available condition."""
    old = dep.get("status") or {}
    available = sum_status(all_rs, "availableReplicas")
    status: dict[str, Any] = {"observedGeneration": int(dep["metadata"]["generation"])}
    set_or_drop(status, "replicas", sum_status(all_rs, "replicas"))
    set_or_drop(status, "updatedReplicas", sum_status([new_rs], "replicas") if new_rs else 0)
    set_or_drop(status, "readyReplicas", sum_status(all_rs, "readyReplicas"))
    set_or_drop(status, "availableReplicas", available)
    set_or_drop(status, "unavailableReplicas", max(0, spec_replicas(all_rs) - available))
    if "collisionCount" in old:
        status["collisionCount"] = old["collisionCount"]
    status["conditions"] = copy.deepcopy(old.get("conditions") or [])
    if available >= int(dep["spec"]["replicas"]) - fenceposts(dep)[1]:
        cond = new_condition(
            "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now
        )
    else:
        cond = new_condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
        )
    set_condition(status, cond)
    return status


def sync_rollout_status(
    dep: dict[str, Any], all_rs: list[dict[str, Any]], new_rs: dict[str, Any] | None, now: datetime
) -> None:
    """`syncRolloutStatus`: `calculate_status` plus the Progressing condition and its deadline."""
    old = dep.get("status") or {}
    status = calculate_status(dep, all_rs, new_rs, now)
    deadline = dep["spec"].get("progressDeadlineSeconds")
    current = get_condition(old, "Progressing")
    is_complete = (
        int(status.get("replicas", 0)) == int(status.get("updatedReplicas", 0))
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE
    )
    if not deadline:
        status["conditions"] = [c for c in status["conditions"] if c["type"] != "Progressing"]
    elif not is_complete:
        rs_name = new_rs["metadata"]["name"] if new_rs else None
        if complete(dep, status):
            msg = (
                f'ReplicaSet "{rs_name}" has successfully progressed.'
                if rs_name
                else (f'Deployment "{dep["metadata"]["name"]}" has successfully progressed.')
            )
            set_condition(status, new_condition("Progressing", "True", NEW_RS_AVAILABLE, msg, now))
        elif progressing(old, status):
            msg = (
                f'ReplicaSet "{rs_name}" is progressing.'
                if rs_name
                else (f'Deployment "{dep["metadata"]["name"]}" is progressing.')
            )
            cond = new_condition("Progressing", "True", RS_UPDATED, msg, now)
            if current is not None and current["status"] == "True":
                cond["lastTransitionTime"] = current["lastTransitionTime"]
            status["conditions"] = [c for c in status["conditions"] if c["type"] != "Progressing"] + [cond]
        elif timed_out(dep, status, now):
            msg = (
                f'ReplicaSet "{rs_name}" has timed out progressing.'
                if rs_name
                else (f'Deployment "{dep["metadata"]["name"]}" has timed out progressing.')
            )
            set_condition(status, new_condition("Progressing", "False", TIMED_OUT, msg, now))
    dep["status"] = status


def progressing(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """`DeploymentProgressing`: more updated, ready or available pods, or fewer old ones."""

    def g(s: dict[str, Any], f: str) -> int:
        return int(s.get(f, 0))

    old_olds = g(old, "replicas") - g(old, "updatedReplicas")
    new_olds = g(new, "replicas") - g(new, "updatedReplicas")
    return (
        g(new, "updatedReplicas") > g(old, "updatedReplicas")
        or g(new, "readyReplicas") > g(old, "readyReplicas")
        or g(new, "availableReplicas") > g(old, "availableReplicas")
        or old_olds > new_olds
    )


def timed_out(dep: dict[str, Any], status: dict[str, Any], now: datetime) -> bool:
    """`DeploymentTimedOut`: no progress within spec.progressDeadlineSeconds."""
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond["lastUpdateTime"])
    return now > since + timedelta(seconds=int(dep["spec"]["progressDeadlineSeconds"]))
