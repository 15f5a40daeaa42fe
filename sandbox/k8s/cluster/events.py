"""`ClusterEvents`: core/v1 Events about the cluster's objects, aggregated as the event recorder does.

The same object, reason, message and source make one Event whose `count` goes up; `series_style` mimics
events.k8s.io writers (the scheduler). The API server expires events after an hour; the emulator, whose
clock may stand still or be backdated, keeps the newest `max_events` instead so a long-running sandbox
stays bounded.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from sandbox.k8s.cluster.base import ClusterBase
from sandbox.k8s.objects import fmt_micro, fmt_time

__all__ = ["MAX_EVENTS", "ClusterEvents"]

# The API server expires events after an hour; the emulator keeps the newest MAX_EVENTS instead.
MAX_EVENTS = 5000


class ClusterEvents(ClusterBase):
    """`record_event` over the store, with the aggregation index and the `max_events` bound."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """`ClusterBase`'s arguments; the event index starts empty."""
        super().__init__(*args, **kwargs)
        self._event_index: dict[tuple[Any, ...], tuple[str, str]] = {}
        self.max_events = MAX_EVENTS

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
