"""`ClusterWrites`: the API's writes: create, replace, patch, delete, and the scale subresource.

As the API server answers them: Deployments defaulted and validated, a stale `resourceVersion` a 409,
`status` ignored on the main resource, `dry_run` validating without storing; deleting a Deployment
cascades to its ReplicaSets and pods. Errors are `ApiError`s, the same the HTTP server answers with.
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.k8s.cluster.events import ClusterEvents
from sandbox.k8s.controller import controlled_by
from sandbox.k8s.errors import ApiError
from sandbox.k8s.objects import apply_deployment_defaults, fmt_time
from sandbox.k8s.patch import JSON_PATCH, MERGE_PATCH, PATCH_TYPES, STRATEGIC_MERGE, apply_patch
from sandbox.k8s.resources import resource_for_kind
from sandbox.k8s.validation import validate_deployment, validate_name

__all__ = ["ClusterWrites"]

_PATCH_ALIASES = {"json": JSON_PATCH, "merge": MERGE_PATCH, "strategic": STRATEGIC_MERGE}


class ClusterWrites(ClusterEvents):
    """POST, PUT, PATCH and DELETE, and autoscaling/v1 Scale, over the store."""

    # ---- writes ----

    def create(self, kind: str, namespace: str, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """POST: Deployments (defaulted, validated) and Events."""
        k = self._kind(kind)
        if k not in ("Deployment", "Event"):
            raise ApiError.method_not_allowed("POST", kind)
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            raise ApiError.bad_request("the body must be an object with metadata")
        new = copy.deepcopy(obj)
        meta = new["metadata"]
        if meta.get("namespace") not in (None, "", namespace):
            raise ApiError.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        with self.store.transaction():
            now = self.now()
            if not meta.get("name") and meta.get("generateName"):
                suffix = "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                meta["name"] = f"{meta['generateName']}{suffix}"
            r = resource_for_kind(k)
            if (msg := validate_name(meta.get("name"))) is not None:
                raise ApiError.invalid(
                    k, str(meta.get("name") or ""), [("metadata.name", msg)], group=r.group
                )
            if self.store.get(k, namespace, meta["name"]) is not None:
                raise ApiError.already_exists(r.plural, meta["name"], r.group)
            new["apiVersion"], new["kind"] = r.api_version, k
            meta["namespace"] = namespace
            for system in (
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "managedFields",
            ):
                meta.pop(system, None)
            if k == "Deployment":
                apply_deployment_defaults(new)
                validate_deployment(new)
                meta["generation"] = 1
                new["status"] = {}
            self._stamp(new, now)
            if dry_run:
                return new
            self._ensure_namespace(namespace, now)
            self.store.put(k, new, "ADDED")
            return copy.deepcopy(new)

    def _update_deployment(
        self, old: dict[str, Any], new: dict[str, Any], dry_run: bool, check_version: bool = True
    ) -> dict[str, Any]:
        name, ns = old["metadata"]["name"], old["metadata"]["namespace"]
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise ApiError.bad_request("the body must be an object with metadata")
        meta = new["metadata"]
        if meta.get("name", name) != name:
            raise ApiError.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if meta.get("namespace", ns) != ns:
            raise ApiError.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        rv = meta.get("resourceVersion")
        if check_version and rv not in (None, "") and str(rv) != old["metadata"]["resourceVersion"]:
            raise ApiError.conflict("deployments", name, "apps")
        new["apiVersion"], new["kind"] = "apps/v1", "Deployment"
        for system in ("uid", "creationTimestamp", "generation"):
            meta[system] = old["metadata"][system]
        meta["name"], meta["namespace"] = name, ns
        meta.pop("managedFields", None)
        new["status"] = copy.deepcopy(old.get("status") or {})
        apply_deployment_defaults(new)
        validate_deployment(new, old)
        if new["spec"] != old["spec"]:
            meta["generation"] = int(old["metadata"]["generation"]) + 1
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if dry_run or new == old:
            return copy.deepcopy(new)
        self.store.put("Deployment", new)
        return copy.deepcopy(new)

    def replace(
        self, kind: str, namespace: str, name: str, obj: dict[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        """PUT a Deployment: 409 Conflict if `metadata.resourceVersion` is set and stale."""
        if self._kind(kind) != "Deployment":
            raise ApiError.method_not_allowed("PUT", kind)
        with self.store.transaction():
            old = self._require("Deployment", namespace, name)
            return self._update_deployment(old, copy.deepcopy(obj), dry_run)

    def apply_patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Any,
        patch_type: str = "strategic",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PATCH a Deployment. `patch_type`: "json" | "merge" | "strategic" or the Content-Type itself.
        Changes to `status` are ignored (main resource), a resourceVersion in the patch is a precondition."""
        if self._kind(kind) != "Deployment":
            raise ApiError.method_not_allowed("PATCH", kind)
        content_type = _PATCH_ALIASES.get(patch_type, patch_type)
        if content_type not in PATCH_TYPES:
            raise ApiError.unsupported_media_type(content_type, list(PATCH_TYPES))
        with self.store.transaction():
            old = self._require("Deployment", namespace, name)
            new = apply_patch(old, patch, content_type)
            return self._update_deployment(old, new, dry_run)

    def delete(self, kind: str, namespace: str, name: str, dry_run: bool = False) -> dict[str, Any]:
        """DELETE a Pod (its ReplicaSet makes a new one) or a Deployment (with its ReplicaSets and pods).
        Returns the object as it was, with `deletionTimestamp` set."""
        k = self._kind(kind)
        if k not in ("Pod", "Deployment"):
            raise ApiError.method_not_allowed("DELETE", kind)
        with self.store.transaction():
            obj = self._require(k, namespace, name)
            now = self.now()
            result = copy.deepcopy(obj)
            result["metadata"]["deletionTimestamp"] = fmt_time(now)
            result["metadata"]["deletionGracePeriodSeconds"] = 30 if k == "Pod" else 0
            if dry_run:
                return result
            if k == "Pod":
                self.kubelet.delete_pod(obj, now)
            else:
                for rs in self.store.all("ReplicaSet", namespace):
                    if controlled_by(rs, obj["metadata"]["uid"]):
                        self.delete_replica_set(rs)
                self.store.remove("Deployment", namespace, name)
            return result

    def delete_replica_set(self, rs: dict[str, Any]) -> None:
        """Garbage-collect a ReplicaSet and its pods (the controllers' and `delete`'s cascade)."""
        now = self.now()
        for pod in self.pods_of(rs):
            self.kubelet.delete_pod(pod, now)
        self.store.remove("ReplicaSet", rs["metadata"]["namespace"], rs["metadata"]["name"])

    # ---- the scale subresource (autoscaling/v1 Scale) ----

    def get_scale(self, namespace: str, name: str) -> dict[str, Any]:
        with self.store.transaction():
            return self._scale_of(self._require("Deployment", namespace, name))

    @staticmethod
    def _scale_of(dep: dict[str, Any]) -> dict[str, Any]:
        from sandbox.k8s.selectors import selector_string

        meta = dep["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": dep["spec"]["replicas"]},
            "status": {
                "replicas": int(dep.get("status", {}).get("replicas", 0)),
                "selector": selector_string(dep["spec"]["selector"]),
            },
        }

    def _set_scale(self, dep: dict[str, Any], scale: Any, dry_run: bool) -> dict[str, Any]:
        if not isinstance(scale, dict) or not isinstance(scale.get("spec"), dict):
            raise ApiError.bad_request("the body must be an autoscaling/v1 Scale")
        replicas = scale["spec"].get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError.invalid(
                "Scale",
                dep["metadata"]["name"],
                [("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")],
                group="autoscaling",
            )
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv not in (None, "") and str(rv) != dep["metadata"]["resourceVersion"]:
            raise ApiError.conflict("deployments", dep["metadata"]["name"], "apps")
        new = copy.deepcopy(dep)
        new["spec"]["replicas"] = replicas
        return self._scale_of(self._update_deployment(dep, new, dry_run, check_version=False))

    def replace_scale(
        self, namespace: str, name: str, scale: dict[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        with self.store.transaction():
            return self._set_scale(
                self._require("Deployment", namespace, name), copy.deepcopy(scale), dry_run
            )

    def patch_scale(
        self, namespace: str, name: str, patch: Any, patch_type: str = "merge", dry_run: bool = False
    ) -> dict[str, Any]:
        content_type = _PATCH_ALIASES.get(patch_type, patch_type)
        with self.store.transaction():
            dep = self._require("Deployment", namespace, name)
            return self._set_scale(dep, apply_patch(self._scale_of(dep), patch, content_type), dry_run)
