"""The object store under the emulator: objects by kind, a global resourceVersion, change fan-out.

Usage (inside the package; `Cluster` is the public face)::

    store = ObjectStore()
    with store.transaction():            # one lock; subscribers are called after it is released
        store.put("Deployment", obj, "ADDED")
    watcher = store.watch("Deployment", "prod", since=None, match=lambda o: True)
    change = watcher.next(timeout_s=0.5)  # a Change or None

Every write gives the object the next resourceVersion (a global counter, rendered as a string as the API
server does) and records a `Change` for watches (kept in a bounded history so a watch can resume from a
resourceVersion) and for subscribers.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sandbox.k8s.errors import ApiError
from sandbox.k8s.resources import RESOURCES

__all__ = ["Change", "ObjectStore", "Watcher"]

log = logging.getLogger(__name__)

HISTORY_LEN = 5000


@dataclass(frozen=True)
class Change:
    """One write: `type` ADDED | MODIFIED | DELETED, the kind, and a snapshot of the object after it."""

    type: str
    kind: str
    object: dict[str, Any]
    resource_version: int

    @property
    def namespace(self) -> str:
        return str(self.object["metadata"].get("namespace") or "")

    @property
    def name(self) -> str:
        return str(self.object["metadata"]["name"])


class Watcher:
    """A watch on one kind (optionally one namespace): changes arrive on a queue until `close()`."""

    def __init__(
        self, store: ObjectStore, kind: str, namespace: str | None, match: Callable[[dict[str, Any]], bool]
    ) -> None:
        self._store = store
        self.kind = kind
        self.namespace = namespace
        self.match = match
        self._queue: queue.Queue[Change] = queue.Queue()
        self.closed = False

    def wants(self, change: Change) -> bool:
        if change.kind != self.kind:
            return False
        if self.namespace and change.namespace != self.namespace:
            return False
        return self.match(change.object)

    def offer(self, change: Change) -> None:
        if not self.closed and self.wants(change):
            self._queue.put_nowait(change)

    def next(self, timeout_s: float) -> Change | None:
        """The next change, or None if none arrives within `timeout_s`."""
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closed = True
        self._store.unwatch(self)


class ObjectStore:
    """Objects per kind keyed by (namespace, name); thread-safe through one re-entrant lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._pending: list[Change] = []
        self._dispatch_lock = threading.RLock()
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            r.kind: {} for r in RESOURCES if r.stored
        }
        self._rv = 0
        self._history: deque[Change] = deque(maxlen=HISTORY_LEN)
        self._watchers: set[Watcher] = set()
        self._subscribers: list[Callable[[Change], None]] = []

    # ---- locking and fan-out ----

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the store lock; subscribers hear of the changes once the outermost transaction ends."""
        self._lock.acquire()
        self._depth += 1
        changes: list[Change] = []
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                changes, self._pending = self._pending, []
            self._lock.release()
        if changes:
            self._dispatch(changes)

    def _dispatch(self, changes: list[Change]) -> None:
        with self._dispatch_lock:
            subscribers = list(self._subscribers)
            for change in changes:
                for callback in subscribers:
                    try:
                        callback(change)
                    except Exception:
                        # A broken subscriber must not break the cluster; it is logged, not hidden.
                        log.exception("k8s emulator subscriber %r failed on %s", callback, change.type)

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # ---- reads (callers hold the lock; results are the stored dicts, not copies) ----

    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects[kind].get((namespace, name))

    def all(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        items = [o for (ns, _), o in self._objects[kind].items() if namespace in (None, "", ns)]
        return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    # ---- writes ----

    def _record(self, change_type: str, kind: str, obj: dict[str, Any]) -> None:
        change = Change(change_type, kind, copy.deepcopy(obj), self._rv)
        self._history.append(change)
        self._pending.append(change)
        for w in list(self._watchers):
            w.offer(change)

    def put(self, kind: str, obj: dict[str, Any], change_type: str = "MODIFIED") -> dict[str, Any]:
        """Store `obj` (taking ownership of the dict) with the next resourceVersion."""
        with self._lock:
            self._rv += 1
            meta = obj["metadata"]
            meta["resourceVersion"] = str(self._rv)
            self._objects[kind][(meta.get("namespace", ""), meta["name"])] = obj
            self._record(change_type, kind, obj)
            return obj

    def remove(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects[kind].pop((namespace, name), None)
            if obj is not None:
                self._rv += 1
                obj["metadata"]["resourceVersion"] = str(self._rv)
                self._record("DELETED", kind, obj)
            return obj

    # ---- watches ----

    def watch(
        self,
        kind: str,
        namespace: str | None,
        since: int | None,
        match: Callable[[dict[str, Any]], bool],
    ) -> Watcher:
        """Start a watch. `since=None` first replays every current object as ADDED (a list+watch in one);
        a resourceVersion replays the recorded changes after it, or raises 410 Gone if they are forgotten."""
        with self._lock:
            w = Watcher(self, kind, namespace, match)
            if since is None:
                for obj in self.all(kind, namespace):
                    w.offer(
                        Change("ADDED", kind, copy.deepcopy(obj), int(obj["metadata"]["resourceVersion"]))
                    )
            elif since < self._rv:
                oldest = self._history[0].resource_version if self._history else self._rv + 1
                if since + 1 < oldest:
                    raise ApiError.gone(f"too old resource version: {since} ({oldest - 1})")
                for change in self._history:
                    if change.resource_version > since:
                        w.offer(change)
            self._watchers.add(w)
            return w

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            self._watchers.discard(watcher)
