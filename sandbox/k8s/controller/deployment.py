"""The deployment controller: one pass per Deployment, and the ReplicaSets it owns.

Follows kubernetes `pkg/controller/deployment` (deployment_controller.go, sync.go): the new ReplicaSet is
the oldest whose template equals the Deployment's (ignoring `pod-template-hash`) or a new `<name>-<hash>`;
its revision becomes max(old)+1 with the previous number kept in `revision-history`; `ScalingReplicaSet`
events worded as Kubernetes 1.27+ words them (`Scaled up replica set X to 2` on creation, `... to 2 from 0`
on scaling); `revisionHistoryLimit` pruning. The strategies are in `rollout`, the status in `progress`.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sandbox.k8s.controller.progress import check_paused_conditions
from sandbox.k8s.controller.rollout import rollout_recreate, rollout_rolling, sync_scale_only
from sandbox.k8s.controller.util import (
    FOUND_NEW_RS,
    MAX_REV_HISTORY_CHARS,
    NEW_RS_CREATED,
    controlled_by,
    created,
    fenceposts,
    get_condition,
    new_condition,
    revision_of,
    set_condition,
    spec_replicas,
)
from sandbox.k8s.objects import (
    DESIRED_REPLICAS,
    HASH_LABEL,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    SKIP_ANNOTATIONS,
    fmt_time,
    pod_template_equal,
    template_hash,
)
from sandbox.k8s.selectors import label_selector_matches

if TYPE_CHECKING:
    from sandbox.k8s.cluster import Cluster

__all__ = ["DeploymentController"]


class DeploymentController:
    """kube-controller-manager's deployment controller over the emulator's store."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.store = cluster.store

    def sync_all(self, now: datetime) -> None:
        for dep in list(self.store.all("Deployment")):
            self.sync(dep, now)

    # ---- one Deployment ----

    def owned_replica_sets(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        uid = dep["metadata"]["uid"]
        return [
            rs
            for rs in self.store.all("ReplicaSet", dep["metadata"]["namespace"])
            if controlled_by(rs, uid)
            and label_selector_matches(dep["spec"]["selector"], rs["metadata"].get("labels"))
        ]

    def sync(self, dep: dict[str, Any], now: datetime) -> None:
        before = copy.deepcopy(dep)
        rs_list = self.owned_replica_sets(dep)
        check_paused_conditions(dep, now)
        if dep["spec"].get("paused") or self._is_scaling_event(dep, rs_list):
            sync_scale_only(self, dep, rs_list, now)
        elif (dep["spec"].get("strategy") or {}).get("type") == "Recreate":
            rollout_recreate(self, dep, rs_list, now)
        else:
            rollout_rolling(self, dep, rs_list, now)
        if dep != before:
            self.store.put("Deployment", dep)

    def _is_scaling_event(self, dep: dict[str, Any], rs_list: list[dict[str, Any]]) -> bool:
        new_rs, olds = self.new_and_old(dep, rs_list, now=None, create=False)
        replicas = str(dep["spec"]["replicas"])
        for rs in [r for r in [new_rs, *olds] if r is not None]:
            if int(rs["spec"].get("replicas", 0)) <= 0:
                continue
            desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
            if desired is not None and desired != replicas:
                return True
        return False

    # ---- new and old ReplicaSets, revisions ----

    def _find_new(self, dep: dict[str, Any], rs_list: list[dict[str, Any]]) -> dict[str, Any] | None:
        for rs in sorted(rs_list, key=created):
            if pod_template_equal(rs["spec"].get("template") or {}, dep["spec"]["template"]):
                return rs
        return None

    def new_and_old(
        self, dep: dict[str, Any], rs_list: list[dict[str, Any]], now: datetime | None, create: bool
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """`getNewReplicaSet` and the old ones; with `now`, the new one's revision set (and created if `create`)."""
        existing = self._find_new(dep, rs_list)
        olds = [rs for rs in rs_list if rs is not existing]
        if now is None:
            return existing, olds
        new_revision = max((revision_of(rs) for rs in olds), default=0) + 1
        if existing is not None:
            if self._set_new_rs_annotations(dep, existing, new_revision, exists=True):
                self.store.put("ReplicaSet", existing)
            ann = dep["metadata"].setdefault("annotations", {})
            if ann.get(REVISION) != existing["metadata"]["annotations"][REVISION]:
                ann[REVISION] = existing["metadata"]["annotations"][REVISION]
            status = dep.setdefault("status", {})
            if dep["spec"].get("progressDeadlineSeconds") and get_condition(status, "Progressing") is None:
                msg = f'Found new replica set "{existing["metadata"]["name"]}"'
                set_condition(status, new_condition("Progressing", "True", FOUND_NEW_RS, msg, now))
            return existing, olds
        if not create:
            return None, olds
        return self._create_new_rs(dep, olds, new_revision, now), olds

    def _set_new_rs_annotations(
        self, dep: dict[str, Any], rs: dict[str, Any], new_revision: int, exists: bool
    ) -> bool:
        ann = rs["metadata"].setdefault("annotations", {})
        changed = False
        for key, value in (dep["metadata"].get("annotations") or {}).items():
            if key not in SKIP_ANNOTATIONS and ann.get(key) != value:
                ann[key] = value
                changed = True
        old_revision = ann.get(REVISION)
        old_int = revision_of(rs)
        if old_int < new_revision:
            ann[REVISION] = str(new_revision)
            changed = True
            if old_revision is not None:
                # Rolling back to this ReplicaSet: keep the numbers it had.
                history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
                history.append(old_revision)
                while len(",".join(history)) > MAX_REV_HISTORY_CHARS and len(history) > 1:
                    history.pop(0)
                ann[REVISION_HISTORY] = ",".join(history)
        if not exists:
            changed = self._set_replicas_annotations(dep, rs) or changed
        return changed

    def _set_replicas_annotations(self, dep: dict[str, Any], rs: dict[str, Any]) -> bool:
        replicas = int(dep["spec"]["replicas"])
        ann = rs["metadata"].setdefault("annotations", {})
        want = {DESIRED_REPLICAS: str(replicas), MAX_REPLICAS: str(replicas + fenceposts(dep)[0])}
        if all(ann.get(k) == v for k, v in want.items()):
            return False
        ann.update(want)
        return True

    def _create_new_rs(
        self, dep: dict[str, Any], olds: list[dict[str, Any]], revision: int, now: datetime
    ) -> dict[str, Any]:
        ns = dep["metadata"]["namespace"]
        template = copy.deepcopy(dep["spec"]["template"])
        collisions = int(dep.get("status", {}).get("collisionCount", 0))
        while True:
            pod_hash = template_hash(template, collisions)
            name = f"{dep['metadata']['name']}-{pod_hash}"
            if self.store.get("ReplicaSet", ns, name) is None:
                break
            collisions += 1
            dep.setdefault("status", {})["collisionCount"] = collisions
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(dep["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        replicas = self.new_rs_replicas(dep, olds, None)
        rs: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": self.cluster.new_uid(),
                "generation": 1,
                "creationTimestamp": fmt_time(now),
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": dep["metadata"]["name"],
                        "uid": dep["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
            "status": {"replicas": 0},
        }
        if dep["spec"].get("minReadySeconds"):
            rs["spec"]["minReadySeconds"] = dep["spec"]["minReadySeconds"]
        self._set_new_rs_annotations(dep, rs, revision, exists=False)
        self.store.put("ReplicaSet", rs, "ADDED")
        if replicas > 0:
            self.cluster.record_event(
                dep, "ScalingReplicaSet", f"Scaled up replica set {name} to {replicas}", now=now
            )
        dep["metadata"].setdefault("annotations", {})[REVISION] = str(revision)
        if dep["spec"].get("progressDeadlineSeconds"):
            msg = f'Created new replica set "{name}"'
            set_condition(
                dep.setdefault("status", {}), new_condition("Progressing", "True", NEW_RS_CREATED, msg, now)
            )
        return rs

    def new_rs_replicas(
        self, dep: dict[str, Any], all_rs: list[dict[str, Any]], new_rs: dict[str, Any] | None
    ) -> int:
        """`NewRSNewReplicas`: how far the new ReplicaSet may grow this pass."""
        replicas = int(dep["spec"]["replicas"])
        if (dep["spec"].get("strategy") or {}).get("type") == "Recreate":
            return replicas
        current_new = int(new_rs["spec"].get("replicas", 0)) if new_rs else 0
        max_total = replicas + fenceposts(dep)[0]
        current = spec_replicas(all_rs) + (0 if new_rs is None or new_rs in all_rs else current_new)
        if current >= max_total:
            return current_new
        return current_new + min(max_total - current, replicas - current_new)

    def scale(self, dep: dict[str, Any], rs: dict[str, Any], replicas: int, now: datetime) -> bool:
        """`scaleReplicaSet`: set spec.replicas and the replicas annotations; an event when the count moves."""
        old = int(rs["spec"].get("replicas", 0))
        changed = self._set_replicas_annotations(dep, rs)
        if old != replicas:
            rs["spec"]["replicas"] = replicas
            rs["metadata"]["generation"] = int(rs["metadata"].get("generation", 1)) + 1
            direction = "up" if replicas > old else "down"
            self.cluster.record_event(
                dep,
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} to {replicas} from {old}",
                now=now,
            )
        if changed or old != replicas:
            self.store.put("ReplicaSet", rs)
        return old != replicas

    def cleanup(self, dep: dict[str, Any], olds: list[dict[str, Any]]) -> None:
        """Prune old, scaled-down ReplicaSets beyond `revisionHistoryLimit` (oldest revisions first)."""
        limit = dep["spec"].get("revisionHistoryLimit")
        if limit is None:
            return
        diff = len(olds) - int(limit)
        if diff <= 0:
            return
        for rs in sorted(olds, key=lambda r: (revision_of(r), created(r)))[:diff]:
            status = rs.get("status", {})
            if (
                int(status.get("replicas", 0)) != 0
                or int(rs["spec"].get("replicas", 0)) != 0
                or int(rs["metadata"].get("generation", 1)) > int(status.get("observedGeneration", 0))
            ):
                continue
            self.cluster.delete_replica_set(rs)
