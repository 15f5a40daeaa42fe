"""The Deployment rollout strategies: RollingUpdate, Recreate, and a scale without a rollout.

Follows kubernetes `pkg/controller/deployment` rolling.go (`rolloutRolling`, `reconcileNewReplicaSet`,
`reconcileOldReplicaSets`, `cleanupUnhealthyReplicas`, `scaleDownOldReplicaSetsForRollingUpdate`),
recreate.go (`rolloutRecreate`) and sync.go (`sync`, for scaling and paused Deployments): one scaling step
per pass, bounded by maxSurge/maxUnavailable. Each takes the `DeploymentController` that owns the store.
Simplification: a scaling event during a rollout puts the whole difference on the newest ReplicaSet (scale
up) or takes it from the oldest first (scale down) instead of the controller's proportional split.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sandbox.k8s.controller.progress import calculate_status, complete, sync_rollout_status
from sandbox.k8s.controller.util import created, fenceposts, spec_replicas, sum_status

if TYPE_CHECKING:
    from sandbox.k8s.controller.deployment import DeploymentController

__all__ = ["rollout_recreate", "rollout_rolling", "sync_scale_only"]


def rollout_rolling(
    ctl: DeploymentController, dep: dict[str, Any], rs_list: list[dict[str, Any]], now: datetime
) -> None:
    """`rolloutRolling`: one RollingUpdate step (grow the new ReplicaSet, shrink the old), then status."""
    new_rs, olds = ctl.new_and_old(dep, rs_list, now, create=True)
    if new_rs is None:  # create=True always returns one; say so if that ever changes
        raise RuntimeError("the rollout found no new ReplicaSet after creating it")
    all_rs = [new_rs, *olds]
    if _reconcile_new(ctl, dep, all_rs, new_rs, now) or _reconcile_old(ctl, dep, all_rs, olds, new_rs, now):
        sync_rollout_status(dep, all_rs, new_rs, now)
        return
    if complete(dep, dep.get("status", {})):
        ctl.cleanup(dep, olds)
    sync_rollout_status(dep, all_rs, new_rs, now)


def _reconcile_new(
    ctl: DeploymentController,
    dep: dict[str, Any],
    all_rs: list[dict[str, Any]],
    new_rs: dict[str, Any],
    now: datetime,
) -> bool:
    replicas = int(dep["spec"]["replicas"])
    current = int(new_rs["spec"].get("replicas", 0))
    if current == replicas:
        return False
    if current > replicas:
        return ctl.scale(dep, new_rs, replicas, now)
    return ctl.scale(dep, new_rs, ctl.new_rs_replicas(dep, all_rs, new_rs), now)


def _reconcile_old(
    ctl: DeploymentController,
    dep: dict[str, Any],
    all_rs: list[dict[str, Any]],
    olds: list[dict[str, Any]],
    new_rs: dict[str, Any],
    now: datetime,
) -> bool:
    active_olds = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) > 0]
    if spec_replicas(active_olds) == 0:
        return False
    replicas = int(dep["spec"]["replicas"])
    min_available = replicas - fenceposts(dep)[1]
    new_unavailable = int(new_rs["spec"].get("replicas", 0)) - int(
        new_rs.get("status", {}).get("availableReplicas", 0)
    )
    max_scaled_down = spec_replicas(all_rs) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    # cleanupUnhealthyReplicas: old pods that are not available go first.
    cleaned = 0
    for rs in sorted(active_olds, key=created):
        if cleaned >= max_scaled_down:
            break
        spec_n = int(rs["spec"].get("replicas", 0))
        available = int(rs.get("status", {}).get("availableReplicas", 0))
        if spec_n == 0 or spec_n == available:
            continue
        n = min(max_scaled_down - cleaned, spec_n - available)
        ctl.scale(dep, rs, spec_n - n, now)
        cleaned += n
    # scaleDownOldReplicaSetsForRollingUpdate: keep at least minAvailable available pods.
    available_pods = sum_status(all_rs, "availableReplicas")
    scaled = 0
    if available_pods > min_available:
        total = available_pods - min_available
        for rs in sorted(active_olds, key=created):
            if scaled >= total:
                break
            spec_n = int(rs["spec"].get("replicas", 0))
            if spec_n == 0:
                continue
            n = min(spec_n, total - scaled)
            ctl.scale(dep, rs, spec_n - n, now)
            scaled += n
    return cleaned + scaled > 0


def rollout_recreate(
    ctl: DeploymentController, dep: dict[str, Any], rs_list: list[dict[str, Any]], now: datetime
) -> None:
    """`rolloutRecreate`: every old pod gone before the new ReplicaSet is created and scaled up."""
    new_rs, olds = ctl.new_and_old(dep, rs_list, now, create=False)
    all_rs = [rs for rs in [new_rs, *olds] if rs is not None]
    scaled_down = False
    for rs in olds:
        if int(rs["spec"].get("replicas", 0)) > 0:
            scaled_down = ctl.scale(dep, rs, 0, now) or scaled_down
    if scaled_down or any(int(rs.get("status", {}).get("replicas", 0)) for rs in olds):
        sync_rollout_status(dep, all_rs, new_rs, now)
        return
    if new_rs is None:
        new_rs, olds = ctl.new_and_old(dep, rs_list, now, create=True)
        if new_rs is None:
            raise RuntimeError("the rollout found no new ReplicaSet after creating it")
        all_rs = [new_rs, *olds]
    if int(new_rs["spec"].get("replicas", 0)) != int(dep["spec"]["replicas"]):
        ctl.scale(dep, new_rs, int(dep["spec"]["replicas"]), now)
    elif complete(dep, dep.get("status", {})):
        ctl.cleanup(dep, olds)
    sync_rollout_status(dep, all_rs, new_rs, now)


def sync_scale_only(
    ctl: DeploymentController, dep: dict[str, Any], rs_list: list[dict[str, Any]], now: datetime
) -> None:
    """`dc.sync`: apply a replica-count change without rolling the template (also while paused)."""
    new_rs, olds = ctl.new_and_old(dep, rs_list, now, create=False)
    all_rs = [rs for rs in [new_rs, *olds] if rs is not None]
    replicas = int(dep["spec"]["replicas"])
    active = [rs for rs in all_rs if int(rs["spec"].get("replicas", 0)) > 0]
    target: dict[str, Any] | None = None
    if len(active) == 1:
        target = active[0]
    elif not active and all_rs:
        target = new_rs or max(olds, key=created)
    if target is not None:
        ctl.scale(dep, target, replicas, now)
    elif active:
        diff = replicas - spec_replicas(active)
        ordered = sorted(active, key=created)
        if diff > 0:
            grow = new_rs if new_rs in active else ordered[-1]
            if grow is None:
                raise RuntimeError("no active ReplicaSet to scale up")
            ctl.scale(dep, grow, int(grow["spec"]["replicas"]) + diff, now)
        for rs in ordered if diff < 0 else []:
            if diff == 0:
                break
            n = min(int(rs["spec"]["replicas"]), -diff)
            ctl.scale(dep, rs, int(rs["spec"]["replicas"]) - n, now)
            diff += n
    if dep["spec"].get("paused"):
        ctl.cleanup(dep, olds)
    dep["status"] = calculate_status(dep, all_rs, new_rs, now)
