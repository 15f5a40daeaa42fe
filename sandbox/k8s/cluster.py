"""`Cluster`: the emulated Kubernetes cluster, in memory, thread-safe, driven by a deterministic `tick()`.

Usage::

    cluster = Cluster(pod_start_delay_s=0.0)                 # two Ready nodes, namespaces, no workloads
    cluster.seed_deployment("prod", "web", "registry.local/web:1.4.2", replicas=2,
                            created_at=now - timedelta(hours=2))   # revision 1, pods Running+Ready
    bad = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2-bad"}]}}}}
    cluster.apply_patch("Deployment", "prod", "web", bad)    # strategic merge patch by default
    cluster.tick()                                           # one controller pass (kubelet, RS, Deployment)
    cluster.ready_pods("prod", "web")
    cluster.subscribe(lambda change: ...)                    # after every write, outside the lock

Objects are plain dicts in the API's JSON shape; every method returns copies. Errors are `ApiError`s,
the same the HTTP server answers with. `clock` is a callable returning an aware UTC datetime and can be
replaced at any time (tests backdate or fast-forward it). Serve it over HTTP with `serve_cluster`.

Why one module past 400 lines: `Cluster` is one thing, the facade every caller uses (tests, the service,
the HTTP server); the storage, controllers, kubelet, patching and validation it delegates to are modules
of their own.
"""

from __future__ import annotations

import builtins
import copy
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.k8s.controller import DeploymentController, ReplicaSetController, controlled_by
from sandbox.k8s.errors import ApiError
from sandbox.k8s.kubelet import Kubelet
from sandbox.k8s.objects import apply_deployment_defaults, deployment, fmt_micro, fmt_time, node
from sandbox.k8s.patch import JSON_PATCH, MERGE_PATCH, PATCH_TYPES, STRATEGIC_MERGE, apply_patch
from sandbox.k8s.resources import resource_for_kind
from sandbox.k8s.selectors import parse_field_selector, parse_label_selector
from sandbox.k8s.store import Change, ObjectStore, Watcher
from sandbox.k8s.validation import validate_deployment, validate_name

__all__ = ["Change", "Cluster"]

_PATCH_ALIASES = {"json": JSON_PATCH, "merge": MERGE_PATCH, "strategic": STRATEGIC_MERGE}
# The API server expires events after an hour; the emulator, whose clock may stand still or be
# backdated, keeps the newest MAX_EVENTS instead so a long-running sandbox stays bounded.
MAX_EVENTS = 5000
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Cluster:
    """An in-memory Kubernetes cluster: store, controllers, kubelet, metrics. See the module docstring."""

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        pod_start_delay_s: float = 0.0,
        crash_backoff_s: float = 10.0,
        node_names: tuple[str, ...] = ("sandbox-node-1", "sandbox-node-2"),
        seed: int = 0,
    ) -> None:
        self.clock: Callable[[], datetime] = clock or _utcnow
        self.pod_start_delay_s = pod_start_delay_s
        self.crash_backoff_s = crash_backoff_s
        self.bad_images: set[str] = set()
        self.default_cpu_m = 25
        self.default_memory_bytes = 96 * 1024 * 1024
        self.rng = random.Random(seed)
        self.store = ObjectStore()
        self.kubelet = Kubelet(self)
        self._deployments = DeploymentController(self)
        self._replica_sets = ReplicaSetController(self)
        self._now_override: datetime | None = None
        self._event_index: dict[tuple[Any, ...], tuple[str, str]] = {}
        self.max_events = MAX_EVENTS
        born = self.now() - timedelta(days=30)
        with self.store.transaction():
            for ns in DEFAULT_NAMESPACES:
                self._ensure_namespace(ns, born)
            for i, name in enumerate(node_names):
                self.store.put(
                    "Node", self._stamp(node(name, born, address=f"10.0.0.{10 + i}"), born), "ADDED"
                )

    # ---- basics ----

    def now(self) -> datetime:
        """The cluster's current time (the clock, or the seeding time while seeding)."""
        if self._now_override is not None:
            return self._now_override
        t = self.clock()
        if t.tzinfo is None:
            raise ValueError("Cluster.clock must return an aware datetime (UTC)")
        return t.astimezone(UTC)

    def new_uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def is_bad_image(self, image: str) -> bool:
        """Pods of this image crash: it is in `bad_images`, or its tag contains "bad"."""
        if image in self.bad_images:
            return True
        last = image.rsplit("/", 1)[-1]
        return ":" in last and "bad" in last.split(":", 1)[1].split("@", 1)[0]

    def _stamp(self, obj: dict[str, Any], now: datetime) -> dict[str, Any]:
        meta = obj["metadata"]
        meta.setdefault("uid", self.new_uid())
        meta.setdefault("creationTimestamp", fmt_time(now))
        return obj

    def _ensure_namespace(self, ns: str, now: datetime) -> None:
        if self.store.get("Namespace", "", ns) is None:
            obj = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
            self.store.put("Namespace", self._stamp(obj, now), "ADDED")

    @staticmethod
    def _kind(kind: str) -> str:
        return resource_for_kind(kind).kind

    def _require(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        r = resource_for_kind(kind)
        obj = self.store.get(r.kind, namespace if r.namespaced else "", name)
        if obj is None:
            raise ApiError.not_found(r.plural, name, r.group)
        return obj

    # ---- reads ----

    @property
    def resource_version(self) -> str:
        return str(self.store.resource_version)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """One object (a copy); `ApiError` 404 if absent."""
        with self.store.transaction():
            return copy.deepcopy(self._require(kind, namespace, name))

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Objects of a kind (all namespaces when `namespace` is None), filtered like the API server does."""
        return self.list_with_version(kind, namespace, label_selector, field_selector)[0]

    def list_with_version(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """`list` plus the resourceVersion the list was read at (for a following watch)."""
        k = self._kind(kind)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, k)
        with self.store.transaction():
            items = [
                copy.deepcopy(o)
                for o in self.store.all(k, namespace)
                if labels.matches(o["metadata"].get("labels")) and fields.matches(o)
            ]
            return items, self.resource_version

    def watch(
        self,
        kind: str,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Watcher:
        """Changes of a kind from now on; without a resourceVersion (or "0") current objects come first."""
        k = self._kind(kind)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, k)
        since: int | None = None
        if resource_version not in (None, "", "0"):
            try:
                since = int(str(resource_version))
            except ValueError:
                raise ApiError.bad_request(f"invalid resource version: {resource_version!r}") from None
        return self.store.watch(
            k, namespace, since, lambda o: labels.matches(o["metadata"].get("labels")) and fields.matches(o)
        )

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call `callback(change)` after every write (outside the lock; don't mutate `change.object`).
        Returns a function that unsubscribes."""
        return self.store.subscribe(callback)

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

    # ---- the controllers ----

    def tick(self, instant: bool = False) -> bool:
        """One deterministic controller pass: kubelet (pod starts, crash restarts), ReplicaSets (pods,
        status), Deployments (rollout step, revisions, status, conditions, pruning). True if anything
        changed. `instant` starts pending pods regardless of `pod_start_delay_s`."""
        with self.store.transaction():
            before = self.store.resource_version
            now = self.now()
            self.kubelet.sync_all(now, instant=instant)
            self._replica_sets.sync_all(now)
            self._deployments.sync_all(now)
            return self.store.resource_version != before

    def settle(self, max_ticks: int = 100, instant: bool = False) -> int:
        """Tick until nothing changes (at most `max_ticks`); the number of ticks that changed something."""
        for i in range(max_ticks):
            if not self.tick(instant=instant):
                return i
        return max_ticks

    # ---- seeding ----

    def seed_deployment(
        self,
        namespace: str,
        name: str,
        image: str,
        replicas: int = 2,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a Deployment and run it to completion at `created_at` (default now): revision 1,
        `replicas` pods Running and Ready (or crash-looping if the image is bad)."""
        with self.store.transaction():
            self._now_override = created_at.astimezone(UTC) if created_at else self.now()
            try:
                self.create(
                    "Deployment", namespace, deployment(namespace, name, image, replicas, env, labels)
                )
                self.settle(instant=True)
            finally:
                self._now_override = None
            return self.get("Deployment", namespace, name)

    # ---- pods ----

    def pods_of(self, rs: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        """The stored pods a ReplicaSet controls (internal: not copies)."""
        uid = rs["metadata"]["uid"]
        return [p for p in self.store.all("Pod", rs["metadata"]["namespace"]) if controlled_by(p, uid)]

    def deployment_pods(self, namespace: str, name: str) -> builtins.list[dict[str, Any]]:
        """Copies of every pod of a Deployment (through its ReplicaSets), sorted by name."""
        with self.store.transaction():
            dep = self._require("Deployment", namespace, name)
            pods = [
                copy.deepcopy(p) for rs in self._deployments.owned_replica_sets(dep) for p in self.pods_of(rs)
            ]
            return sorted(pods, key=lambda p: p["metadata"]["name"])

    def ready_pods(self, namespace: str, deployment: str) -> builtins.list[dict[str, Any]]:
        """The Deployment's pods whose Ready condition is True (the ones a Service would route to)."""
        return [p for p in self.deployment_pods(namespace, deployment) if self.kubelet.is_ready(p)]

    def append_pod_log(self, namespace: str, pod: str, line: str, container: str | None = None) -> None:
        """Add a line to the current log of a pod's container (the only one if `container` is None)."""
        with self.store.transaction():
            self.kubelet.append_log(self._require("Pod", namespace, pod), container, line, self.now())

    def pod_log(
        self,
        namespace: str,
        pod: str,
        container: str | None = None,
        previous: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        since_time: datetime | None = None,
        timestamps: bool = False,
        limit_bytes: int | None = None,
    ) -> str:
        """The text `GET pods/{pod}/log` answers with."""
        with self.store.transaction():
            return self.kubelet.read_log(
                self._require("Pod", namespace, pod),
                container,
                self.now(),
                previous=previous,
                tail_lines=tail_lines,
                since_seconds=since_seconds,
                since_time=since_time,
                timestamps=timestamps,
                limit_bytes=limit_bytes,
            )

    def set_pod_usage(
        self, namespace: str, pod: str, cpu_m: int, memory_bytes: int, container: str | None = None
    ) -> None:
        """What metrics.k8s.io reports for the pod's container from now on."""
        with self.store.transaction():
            self.kubelet.set_usage(self._require("Pod", namespace, pod), container, cpu_m, memory_bytes)

    def restart_pod(
        self, namespace: str, pod: str, reason: str = "OOMKilled", container: str | None = None
    ) -> dict[str, Any]:
        """The container died (`reason`) and was restarted: restartCount + 1, lastState terminated,
        the old log becomes `--previous`. Returns the pod."""
        with self.store.transaction():
            obj = self._require("Pod", namespace, pod)
            self.kubelet.restart_container(obj, container, reason, self.now())
            return copy.deepcopy(obj)

    # ---- metrics.k8s.io ----

    def pod_metrics(
        self, namespace: str | None = None, name: str | None = None, label_selector: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        """PodMetrics of running pods; with `name`, that one pod's (404 if it has none)."""
        labels = parse_label_selector(label_selector)
        with self.store.transaction():
            now = self.now()
            out = []
            for pod in self.store.all("Pod", namespace):
                if name is not None and pod["metadata"]["name"] != name:
                    continue
                if not labels.matches(pod["metadata"].get("labels")):
                    continue
                m = self.kubelet.pod_metrics(pod, now)
                if m is not None:
                    out.append(m)
            if name is not None and not out:
                raise ApiError.not_found("pods", name, "metrics.k8s.io")
            return out

    def node_metrics(self, name: str | None = None) -> builtins.list[dict[str, Any]]:
        """NodeMetrics: each node's pods plus system overhead; with `name`, that node's (404 if unknown)."""
        with self.store.transaction():
            now = self.now()
            nodes = self.store.all("Node")
            if name is not None:
                nodes = [n for n in nodes if n["metadata"]["name"] == name]
                if not nodes:
                    raise ApiError.not_found("nodes", name, "metrics.k8s.io")
            return [self.kubelet.node_metrics(n, now) for n in nodes]

    # ---- events ----

    def record_event(
        self,
        involved: dict[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        now: datetime | None = None,
        component: str = "deployment-controller",
        field_path: str | None = None,
        series_style: bool = False,
    ) -> dict[str, Any]:
        """Record a core/v1 Event about `involved`, aggregated like the event recorder does (same
        object, reason, message, source → `count` + 1). `series_style` mimics events.k8s.io writers
        (the scheduler): `eventTime` set, `firstTimestamp`/`lastTimestamp` null."""
        with self.store.transaction():
            now = now or self.now()
            meta = involved["metadata"]
            ns = meta.get("namespace") or "default"
            host = involved.get("spec", {}).get("nodeName") if component == "kubelet" else None
            key = (meta.get("uid"), reason, message, type_, component, field_path)
            existing = self._event_index.get(key)
            if existing is not None:
                ev = self.store.get("Event", *existing)
                if ev is not None:
                    ev["count"] = int(ev.get("count") or 1) + 1
                    if series_style:
                        ev["series"] = {"count": ev["count"], "lastObservedTime": fmt_micro(now)}
                    else:
                        ev["lastTimestamp"] = fmt_time(now)
                    self.store.put("Event", ev)
                    return copy.deepcopy(ev)
            stamp = int(now.timestamp() * 1_000_000_000)
            while self.store.get("Event", ns, f"{meta['name']}.{stamp:x}") is not None:
                stamp += 1
            ref: dict[str, Any] = {
                "kind": involved.get("kind"),
                "namespace": meta.get("namespace"),
                "name": meta["name"],
                "uid": meta.get("uid"),
                "apiVersion": involved.get("apiVersion"),
                "resourceVersion": meta.get("resourceVersion"),
            }
            if field_path:
                ref["fieldPath"] = f"spec.containers{{{field_path}}}"
            ev = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": f"{meta['name']}.{stamp:x}",
                    "namespace": ns,
                    "uid": self.new_uid(),
                    "creationTimestamp": fmt_time(now),
                },
                "involvedObject": ref,
                "reason": reason,
                "message": message,
                "type": type_,
                "source": {"component": component, **({"host": host} if host else {})},
                "reportingComponent": component,
                "reportingInstance": host or "",
            }
            if series_style:
                ev.update(
                    {
                        "firstTimestamp": None,
                        "lastTimestamp": None,
                        "eventTime": fmt_micro(now),
                        "action": "Binding",
                        "reportingInstance": f"{component}-sandbox-control-plane",
                        "source": {},
                    }
                )
            else:
                ev.update(
                    {
                        "firstTimestamp": fmt_time(now),
                        "lastTimestamp": fmt_time(now),
                        "count": 1,
                        "eventTime": None,
                    }
                )
            self.store.put("Event", ev, "ADDED")
            self._event_index[key] = (ns, ev["metadata"]["name"])
            while len(self._event_index) > self.max_events:
                oldest_key = next(iter(self._event_index))  # dicts keep insertion order
                self.store.remove("Event", *self._event_index.pop(oldest_key))
            return copy.deepcopy(ev)
