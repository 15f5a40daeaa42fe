"""Deployment utilities shared by the controllers: ownership, revisions, surge arithmetic, conditions.

Follows kubernetes `pkg/controller/deployment/util/deployment_util.go` (`IsControlledBy`, `Revision`,
`ResolveFenceposts`, `SetDeploymentCondition`) and the Progressing condition reasons it names. Plain
functions over the emulator's object dicts; no store, no clock.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sandbox.k8s.objects import REVISION, fmt_time

__all__ = [
    "FOUND_NEW_RS",
    "MAX_REV_HISTORY_CHARS",
    "NEW_RS_AVAILABLE",
    "NEW_RS_CREATED",
    "PAUSED",
    "RESUMED",
    "RS_UPDATED",
    "TIMED_OUT",
    "controlled_by",
    "created",
    "fenceposts",
    "get_condition",
    "int_or_percent",
    "new_condition",
    "revision_of",
    "set_condition",
    "set_or_drop",
    "spec_replicas",
    "sum_status",
]

MAX_REV_HISTORY_CHARS = 2000
# Progressing condition reasons (deployment util).
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"


def controlled_by(obj: dict[str, Any], owner_uid: str) -> bool:
    """`metav1.IsControlledBy`: an ownerReference with controller: true and the owner's uid."""
    return any(
        ref.get("controller") and ref.get("uid") == owner_uid
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def revision_of(rs: dict[str, Any]) -> int:
    """The ReplicaSet's `deployment.kubernetes.io/revision` (0 when missing or unparsable)."""
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def created(obj: dict[str, Any]) -> tuple[str, str]:
    return (obj["metadata"]["creationTimestamp"], obj["metadata"]["name"])


def int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        scaled = total * int(text[:-1]) / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(text)


def fenceposts(dep: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas (`ResolveFenceposts`, `MaxUnavailable`)."""
    spec = dep["spec"]
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    ru = strategy.get("rollingUpdate") or {}
    surge = int_or_percent(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = int_or_percent(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def spec_replicas(rss: list[dict[str, Any]]) -> int:
    return sum(int(rs["spec"].get("replicas", 0)) for rs in rss)


def sum_status(rss: list[dict[str, Any]], field: str) -> int:
    return sum(int(rs.get("status", {}).get(field, 0)) for rs in rss)


def set_or_drop(status: dict[str, Any], field: str, value: int) -> None:
    """The API omits zero counts (`omitempty`); clients must read a missing count as 0."""
    if value:
        status[field] = value
    else:
        status.pop(field, None)


def get_condition(status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == ctype), None)


def set_condition(status: dict[str, Any], cond: dict[str, Any]) -> None:
    """`SetDeploymentCondition`: same status and reason → unchanged; same status keeps lastTransitionTime."""
    current = get_condition(status, cond["type"])
    if current is not None and current["status"] == cond["status"] and current["reason"] == cond["reason"]:
        return
    if current is not None and current["status"] == cond["status"]:
        cond["lastTransitionTime"] = current["lastTransitionTime"]
    status["conditions"] = [c for c in status.get("conditions") or [] if c["type"] != cond["type"]] + [cond]


def new_condition(ctype: str, status: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    ts = fmt_time(now)
    return {
        "type": ctype,
        "status": status,
        "lastUpdateTime": ts,
        "lastTransitionTime": ts,
        "reason": reason,
        "message": message,
    }
