"""The deployment and replica-set controllers, one deterministic pass at a time.

Usage (through `Cluster.tick()`, which runs the kubelet, then these two)::

    ReplicaSetController(cluster).sync_all(now)    # pods per ReplicaSet, ReplicaSet status
    DeploymentController(cluster).sync_all(now)    # rollouts, revisions, Deployment status, pruning

Follows kubernetes `pkg/controller/deployment` (sync.go, rolling.go, recreate.go, progress.go,
util/deployment_util.go): the new ReplicaSet is the oldest whose template equals the Deployment's
(ignoring `pod-template-hash`) or a new `<name>-<hash>`; its revision becomes max(old)+1 with the previous
number kept in `revision-history`; one scaling step per pass, bounded by maxSurge/maxUnavailable;
`Available` and `Progressing` conditions with the controller's reasons; `ScalingReplicaSet` events worded
as Kubernetes 1.27+ words them (`Scaled up replica set X to 2` on creation, `... to 2 from 0` on scaling);
`revisionHistoryLimit` pruning. Simplification: a scaling event during a rollout puts the whole difference
on the newest ReplicaSet (scale up) or takes it from the oldest first (scale down) instead of the
controller's proportional split.

Why one module past 400 lines: it is the controllers' reconcile pass; the Deployment and ReplicaSet
controllers share the rollout arithmetic (revisions, surge, availability) and read as
kube-controller-manager's deployment controller does, function for function.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.k8s.objects import (
    DESIRED_REPLICAS,
    HASH_LABEL,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    SKIP_ANNOTATIONS,
    fmt_time,
    parse_time,
    pod_template_equal,
    template_hash,
)
from sandbox.k8s.selectors import label_selector_matches

if TYPE_CHECKING:
    from sandbox.k8s.cluster import Cluster

__all__ = ["DeploymentController", "ReplicaSetController", "controlled_by", "revision_of"]

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


def _created(obj: dict[str, Any]) -> tuple[str, str]:
    return (obj["metadata"]["creationTimestamp"], obj["metadata"]["name"])


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
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
    surge = _int_or_percent(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = _int_or_percent(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def _spec_replicas(rss: list[dict[str, Any]]) -> int:
    return sum(int(rs["spec"].get("replicas", 0)) for rs in rss)


def _status(rss: list[dict[str, Any]], field: str) -> int:
    return sum(int(rs.get("status", {}).get(field, 0)) for rs in rss)


def _set_or_drop(status: dict[str, Any], field: str, value: int) -> None:
    """The API omits zero counts (`omitempty`); clients must read a missing count as 0."""
    if value:
        status[field] = value
    else:
        status.pop(field, None)


def _condition(status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == ctype), None)


def _set_condition(status: dict[str, Any], cond: dict[str, Any]) -> None:
    """`SetDeploymentCondition`: same status and reason → unchanged; same status keeps lastTransitionTime."""
    current = _condition(status, cond["type"])
    if current is not None and current["status"] == cond["status"] and current["reason"] == cond["reason"]:
        return
    if current is not None and current["status"] == cond["status"]:
        cond["lastTransitionTime"] = current["lastTransitionTime"]
    status["conditions"] = [c for c in status.get("conditions") or [] if c["type"] != cond["type"]] + [cond]


def _new_condition(ctype: str, status: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    ts = fmt_time(now)
    return {
        "type": ctype,
        "status": status,
        "lastUpdateTime": ts,
        "lastTransitionTime": ts,
        "reason": reason,
        "message": message,
    }


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
        self._check_paused_conditions(dep, now)
        if dep["spec"].get("paused") or self._is_scaling_event(dep, rs_list):
            self._sync_scale_only(dep, rs_list, now)
        elif (dep["spec"].get("strategy") or {}).get("type") == "Recreate":
            self._rollout_recreate(dep, rs_list, now)
        else:
            self._rollout_rolling(dep, rs_list, now)
        if dep != before:
            self.store.put("Deployment", dep)

    def _check_paused_conditions(self, dep: dict[str, Any], now: datetime) -> None:
        if not dep["spec"].get("progressDeadlineSeconds"):
            return
        status = dep.setdefault("status", {})
        cond = _condition(status, "Progressing")
        paused_cond = cond is not None and cond.get("reason") == PAUSED
        if dep["spec"].get("paused") and not paused_cond:
            _set_condition(
                status, _new_condition("Progressing", "Unknown", PAUSED, "Deployment is paused", now)
            )
        elif not dep["spec"].get("paused") and paused_cond:
            _set_condition(
                status, _new_condition("Progressing", "Unknown", RESUMED, "Deployment is resumed", now)
            )

    def _is_scaling_event(self, dep: dict[str, Any], rs_list: list[dict[str, Any]]) -> bool:
        new_rs, olds = self._new_and_old(dep, rs_list, now=None, create=False)
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
        for rs in sorted(rs_list, key=_created):
            if pod_template_equal(rs["spec"].get("template") or {}, dep["spec"]["template"]):
                return rs
        return None

    def _new_and_old(
        self, dep: dict[str, Any], rs_list: list[dict[str, Any]], now: datetime | None, create: bool
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
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
            if dep["spec"].get("progressDeadlineSeconds") and _condition(status, "Progressing") is None:
                msg = f'Found new replica set "{existing["metadata"]["name"]}"'
                _set_condition(status, _new_condition("Progressing", "True", FOUND_NEW_RS, msg, now))
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
        replicas = self._new_rs_replicas(dep, olds, None)
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
            _set_condition(
                dep.setdefault("status", {}), _new_condition("Progressing", "True", NEW_RS_CREATED, msg, now)
            )
        return rs

    def _new_rs_replicas(
        self, dep: dict[str, Any], all_rs: list[dict[str, Any]], new_rs: dict[str, Any] | None
    ) -> int:
        """`NewRSNewReplicas`: how far the new ReplicaSet may grow this pass."""
        replicas = int(dep["spec"]["replicas"])
        if (dep["spec"].get("strategy") or {}).get("type") == "Recreate":
            return replicas
        current_new = int(new_rs["spec"].get("replicas", 0)) if new_rs else 0
        max_total = replicas + fenceposts(dep)[0]
        current = _spec_replicas(all_rs) + (0 if new_rs is None or new_rs in all_rs else current_new)
        if current >= max_total:
            return current_new
        return current_new + min(max_total - current, replicas - current_new)

    def _scale(self, dep: dict[str, Any], rs: dict[str, Any], replicas: int, now: datetime) -> bool:
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

    # ---- strategies ----

    def _rollout_rolling(self, dep: dict[str, Any], rs_list: list[dict[str, Any]], now: datetime) -> None:
        new_rs, olds = self._new_and_old(dep, rs_list, now, create=True)
        if new_rs is None:  # create=True always returns one; say so if that ever changes
            raise RuntimeError("the rollout found no new ReplicaSet after creating it")
        all_rs = [new_rs, *olds]
        if self._reconcile_new(dep, all_rs, new_rs, now) or self._reconcile_old(
            dep, all_rs, olds, new_rs, now
        ):
            self._sync_rollout_status(dep, all_rs, new_rs, now)
            return
        if self._complete(dep, dep.get("status", {})):
            self._cleanup(dep, olds)
        self._sync_rollout_status(dep, all_rs, new_rs, now)

    def _reconcile_new(
        self, dep: dict[str, Any], all_rs: list[dict[str, Any]], new_rs: dict[str, Any], now: datetime
    ) -> bool:
        replicas = int(dep["spec"]["replicas"])
        current = int(new_rs["spec"].get("replicas", 0))
        if current == replicas:
            return False
        if current > replicas:
            return self._scale(dep, new_rs, replicas, now)
        return self._scale(dep, new_rs, self._new_rs_replicas(dep, all_rs, new_rs), now)

    def _reconcile_old(
        self,
        dep: dict[str, Any],
        all_rs: list[dict[str, Any]],
        olds: list[dict[str, Any]],
        new_rs: dict[str, Any],
        now: datetime,
    ) -> bool:
        active_olds = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) > 0]
        if _spec_replicas(active_olds) == 0:
            return False
        replicas = int(dep["spec"]["replicas"])
        min_available = replicas - fenceposts(dep)[1]
        new_unavailable = int(new_rs["spec"].get("replicas", 0)) - int(
            new_rs.get("status", {}).get("availableReplicas", 0)
        )
        max_scaled_down = _spec_replicas(all_rs) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        # cleanupUnhealthyReplicas: old pods that are not available go first.
        cleaned = 0
        for rs in sorted(active_olds, key=_created):
            if cleaned >= max_scaled_down:
                break
            spec_n = int(rs["spec"].get("replicas", 0))
            available = int(rs.get("status", {}).get("availableReplicas", 0))
            if spec_n == 0 or spec_n == available:
                continue
            n = min(max_scaled_down - cleaned, spec_n - available)
            self._scale(dep, rs, spec_n - n, now)
            cleaned += n
        # scaleDownOldReplicaSetsForRollingUpdate: keep at least minAvailable available pods.
        available_pods = _status(all_rs, "availableReplicas")
        scaled = 0
        if available_pods > min_available:
            total = available_pods - min_available
            for rs in sorted(active_olds, key=_created):
                if scaled >= total:
                    break
                spec_n = int(rs["spec"].get("replicas", 0))
                if spec_n == 0:
                    continue
                n = min(spec_n, total - scaled)
                self._scale(dep, rs, spec_n - n, now)
                scaled += n
        return cleaned + scaled > 0

    def _rollout_recreate(self, dep: dict[str, Any], rs_list: list[dict[str, Any]], now: datetime) -> None:
        new_rs, olds = self._new_and_old(dep, rs_list, now, create=False)
        all_rs = [rs for rs in [new_rs, *olds] if rs is not None]
        scaled_down = False
        for rs in olds:
            if int(rs["spec"].get("replicas", 0)) > 0:
                scaled_down = self._scale(dep, rs, 0, now) or scaled_down
        if scaled_down or any(int(rs.get("status", {}).get("replicas", 0)) for rs in olds):
            self._sync_rollout_status(dep, all_rs, new_rs, now)
            return
        if new_rs is None:
            new_rs, olds = self._new_and_old(dep, rs_list, now, create=True)
            if new_rs is None:
                raise RuntimeError("the rollout found no new ReplicaSet after creating it")
            all_rs = [new_rs, *olds]
        if int(new_rs["spec"].get("replicas", 0)) != int(dep["spec"]["replicas"]):
            self._scale(dep, new_rs, int(dep["spec"]["replicas"]), now)
        elif self._complete(dep, dep.get("status", {})):
            self._cleanup(dep, olds)
        self._sync_rollout_status(dep, all_rs, new_rs, now)

    def _sync_scale_only(self, dep: dict[str, Any], rs_list: list[dict[str, Any]], now: datetime) -> None:
        """`dc.sync`: apply a replica-count change without rolling the template (also while paused)."""
        new_rs, olds = self._new_and_old(dep, rs_list, now, create=False)
        all_rs = [rs for rs in [new_rs, *olds] if rs is not None]
        replicas = int(dep["spec"]["replicas"])
        active = [rs for rs in all_rs if int(rs["spec"].get("replicas", 0)) > 0]
        target: dict[str, Any] | None = None
        if len(active) == 1:
            target = active[0]
        elif not active and all_rs:
            target = new_rs or max(olds, key=_created)
        if target is not None:
            self._scale(dep, target, replicas, now)
        elif active:
            diff = replicas - _spec_replicas(active)
            ordered = sorted(active, key=_created)
            if diff > 0:
                grow = new_rs if new_rs in active else ordered[-1]
                if grow is None:
                    raise RuntimeError("no active ReplicaSet to scale up")
                self._scale(dep, grow, int(grow["spec"]["replicas"]) + diff, now)
            for rs in ordered if diff < 0 else []:
                if diff == 0:
                    break
                n = min(int(rs["spec"]["replicas"]), -diff)
                self._scale(dep, rs, int(rs["spec"]["replicas"]) - n, now)
                diff += n
        if dep["spec"].get("paused"):
            self._cleanup(dep, olds)
        dep["status"] = self._calculate_status(dep, all_rs, new_rs, now)

    # ---- status ----

    def _complete(self, dep: dict[str, Any], status: dict[str, Any]) -> bool:
        """`DeploymentComplete`: every replica updated and available, and the spec observed."""
        replicas = int(dep["spec"]["replicas"])
        return (
            int(status.get("updatedReplicas", 0)) == replicas
            and int(status.get("replicas", 0)) == replicas
            and int(status.get("availableReplicas", 0)) == replicas
            and int(status.get("observedGeneration", 0)) >= int(dep["metadata"]["generation"])
        )

    def _calculate_status(
        self, dep: dict[str, Any], all_rs: list[dict[str, Any]], new_rs: dict[str, Any] | None, now: datetime
    ) -> dict[str, Any]:
        old = dep.get("status") or {}
        available = _status(all_rs, "availableReplicas")
        status: dict[str, Any] = {"observedGeneration": int(dep["metadata"]["generation"])}
        _set_or_drop(status, "replicas", _status(all_rs, "replicas"))
        _set_or_drop(status, "updatedReplicas", _status([new_rs], "replicas") if new_rs else 0)
        _set_or_drop(status, "readyReplicas", _status(all_rs, "readyReplicas"))
        _set_or_drop(status, "availableReplicas", available)
        _set_or_drop(status, "unavailableReplicas", max(0, _spec_replicas(all_rs) - available))
        if "collisionCount" in old:
            status["collisionCount"] = old["collisionCount"]
        status["conditions"] = copy.deepcopy(old.get("conditions") or [])
        if available >= int(dep["spec"]["replicas"]) - fenceposts(dep)[1]:
            cond = _new_condition(
                "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now
            )
        else:
            cond = _new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            )
        _set_condition(status, cond)
        return status

    def _sync_rollout_status(
        self, dep: dict[str, Any], all_rs: list[dict[str, Any]], new_rs: dict[str, Any] | None, now: datetime
    ) -> None:
        old = dep.get("status") or {}
        status = self._calculate_status(dep, all_rs, new_rs, now)
        deadline = dep["spec"].get("progressDeadlineSeconds")
        current = _condition(old, "Progressing")
        is_complete = (
            int(status.get("replicas", 0)) == int(status.get("updatedReplicas", 0))
            and current is not None
            and current.get("reason") == NEW_RS_AVAILABLE
        )
        if not deadline:
            status["conditions"] = [c for c in status["conditions"] if c["type"] != "Progressing"]
        elif not is_complete:
            rs_name = new_rs["metadata"]["name"] if new_rs else None
            if self._complete(dep, status):
                msg = (
                    f'ReplicaSet "{rs_name}" has successfully progressed.'
                    if rs_name
                    else (f'Deployment "{dep["metadata"]["name"]}" has successfully progressed.')
                )
                _set_condition(status, _new_condition("Progressing", "True", NEW_RS_AVAILABLE, msg, now))
            elif self._progressing(old, status):
                msg = (
                    f'ReplicaSet "{rs_name}" is progressing.'
                    if rs_name
                    else (f'Deployment "{dep["metadata"]["name"]}" is progressing.')
                )
                cond = _new_condition("Progressing", "True", RS_UPDATED, msg, now)
                if current is not None and current["status"] == "True":
                    cond["lastTransitionTime"] = current["lastTransitionTime"]
                status["conditions"] = [c for c in status["conditions"] if c["type"] != "Progressing"] + [
                    cond
                ]
            elif self._timed_out(dep, status, now):
                msg = (
                    f'ReplicaSet "{rs_name}" has timed out progressing.'
                    if rs_name
                    else (f'Deployment "{dep["metadata"]["name"]}" has timed out progressing.')
                )
                _set_condition(status, _new_condition("Progressing", "False", TIMED_OUT, msg, now))
        dep["status"] = status

    @staticmethod
    def _progressing(old: dict[str, Any], new: dict[str, Any]) -> bool:
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

    @staticmethod
    def _timed_out(dep: dict[str, Any], status: dict[str, Any], now: datetime) -> bool:
        cond = _condition(status, "Progressing")
        if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
            return False
        if cond.get("reason") == TIMED_OUT:
            return True
        since = parse_time(cond["lastUpdateTime"])
        return now > since + timedelta(seconds=int(dep["spec"]["progressDeadlineSeconds"]))

    def _cleanup(self, dep: dict[str, Any], olds: list[dict[str, Any]]) -> None:
        """Prune old, scaled-down ReplicaSets beyond `revisionHistoryLimit` (oldest revisions first)."""
        limit = dep["spec"].get("revisionHistoryLimit")
        if limit is None:
            return
        diff = len(olds) - int(limit)
        if diff <= 0:
            return
        for rs in sorted(olds, key=lambda r: (revision_of(r), _created(r)))[:diff]:
            status = rs.get("status", {})
            if (
                int(status.get("replicas", 0)) != 0
                or int(rs["spec"].get("replicas", 0)) != 0
                or int(rs["metadata"].get("generation", 1)) > int(status.get("observedGeneration", 0))
            ):
                continue
            self.cluster.delete_replica_set(rs)


class ReplicaSetController:
    """kube-controller-manager's replica-set controller: pods to match spec.replicas, then status."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.store = cluster.store

    def sync_all(self, now: datetime) -> None:
        for rs in list(self.store.all("ReplicaSet")):
            self.sync(rs, now)

    def sync(self, rs: dict[str, Any], now: datetime) -> None:
        kubelet = self.cluster.kubelet
        pods = self.cluster.pods_of(rs)
        want = int(rs["spec"].get("replicas", 0))
        if len(pods) < want:
            for _ in range(want - len(pods)):
                pod = kubelet.create_pod(rs, now)
                self.cluster.record_event(
                    rs,
                    "SuccessfulCreate",
                    f"Created pod: {pod['metadata']['name']}",
                    now=now,
                    component="replicaset-controller",
                )
                pods.append(pod)
        elif len(pods) > want:
            for pod in sorted(pods, key=kubelet.deletion_rank)[: len(pods) - want]:
                kubelet.delete_pod(pod, now)
                self.cluster.record_event(
                    rs,
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    now=now,
                    component="replicaset-controller",
                )
                pods.remove(pod)
        status: dict[str, Any] = {"replicas": len(pods)}
        _set_or_drop(
            status,
            "fullyLabeledReplicas",
            sum(
                1 for p in pods if label_selector_matches(rs["spec"]["selector"], p["metadata"].get("labels"))
            ),
        )
        min_ready = int(rs["spec"].get("minReadySeconds", 0))
        _set_or_drop(status, "readyReplicas", sum(1 for p in pods if kubelet.is_ready(p)))
        _set_or_drop(
            status, "availableReplicas", sum(1 for p in pods if kubelet.is_available(p, min_ready, now))
        )
        status["observedGeneration"] = int(rs["metadata"].get("generation", 1))
        if rs.get("status") != status:
            rs["status"] = status
            self.store.put("ReplicaSet", rs)
