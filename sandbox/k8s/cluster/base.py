"""`ClusterBase`: the emulated cluster's state, clock and reads; the layers of `Cluster` build on it.

Holds the object store, the clock (`now()`, replaceable at any time), uid generation and the read side of
the API (`get`, `list`, `watch`, `subscribe`), plus the lookups the write and controller layers share
(`_require`, `_kind`, `pods_of`). Objects are plain dicts in the API's JSON shape; reads return copies.
"""

from __future__ import annotations

import builtins
import copy
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sandbox.k8s.controller import controlled_by
from sandbox.k8s.errors import ApiError
from sandbox.k8s.objects import fmt_time
from sandbox.k8s.resources import resource_for_kind
from sandbox.k8s.selectors import parse_field_selector, parse_label_selector
from sandbox.k8s.store import Change, ObjectStore, Watcher

if TYPE_CHECKING:
    from sandbox.k8s.kubelet import Kubelet

__all__ = ["ClusterBase"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ClusterBase:
    """The cluster's state and reads; `Cluster` adds events, writes, controllers, pods and metrics."""

    kubelet: Kubelet

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        pod_start_delay_s: float = 0.0,
        crash_backoff_s: float = 10.0,
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
        self._now_override: datetime | None = None

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

    def pods_of(self, rs: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        """The stored pods a ReplicaSet controls (internal: not copies)."""
        uid = rs["metadata"]["uid"]
        return [p for p in self.store.all("Pod", rs["metadata"]["namespace"]) if controlled_by(p, uid)]
