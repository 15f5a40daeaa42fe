"""Durability first: what the intake commits to the store before it answers 202.

Usage::

    ingestor = StoreIngestor(store, outbox, config, on_enqueued=dispatcher.wake)
    receipt = ingestor.ingest("alertmanager", body, headers, alerts)     # then answer 202 with receipt

For one request, in this order, each step committed before the next:

1. the raw body (`Store.save_raw_payload`), so even an alert we parse wrongly today can be replayed;
2. each normalised alert (`Store.add_alert`, pointing at the raw payload);
3. a firing alert: classified and routed (intake/triage.py), then `Store.open_incident_for`: under
   concurrent callers with one dedupe key exactly one creates the incident, the others join it
   (`alert_count` + 1). A storm of 1,000 copies is one incident;
4. an incident without a flow run gets its outbox row (`Outbox.enqueue`, idempotent). This is done
   for every firing alert of such an incident, not only for the one that created it, so a crash
   between steps 3 and 4 is repaired by the sender's retry (it gets no 202 and sends again);
5. a resolved alert whose incident is open adds the timeline entry of kind `source_resolved` to it:
   the mark for the all-clear path of the lifecycle. The `respond` flow verifies before it resolves.

Only then does the caller answer 202. Any exception here means no 202 (the app answers 503).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from intake.config import IntakeConfig
from intake.outbox import Outbox
from intake.triage import Router, triage
from runbook.models import Alert, AlertStatus, Incident, TimelineEntry
from runbook.severity import Severity

__all__ = ["ALL_CLEAR_KIND", "Ingestor", "Receipt", "StoreIngestor"]

log = logging.getLogger("intake.ingest")

ALL_CLEAR_KIND = "source_resolved"
"""Timeline kind that marks an incident for the all-clear path (the source says it is resolved)."""


@dataclass
class Receipt:
    """What one request did; the 202 body."""

    raw_id: str
    alerts: int = 0
    created: list[str] = field(default_factory=list)
    joined_incidents: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    unmatched_resolved: int = 0

    @property
    def joined(self) -> int:
        return len(self.joined_incidents)

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.alerts,
            "raw_id": self.raw_id,
            "incidents_created": self.created,
            "incidents_joined": sorted(set(self.joined_incidents)),
            "incidents_marked_resolved": self.resolved,
            "resolved_without_open_incident": self.unmatched_resolved,
        }


class Ingestor(Protocol):
    """What the HTTP layer needs: store one request durably, say whether the store is reachable."""

    def ingest(
        self, source: str, body: bytes, headers: Mapping[str, str], alerts: list[Alert]
    ) -> Receipt: ...

    def ready(self) -> tuple[bool, str]: ...

    def queue_depth(self) -> float: ...


class IntakeStore(Protocol):
    """The part of `runbook.store.Store` the intake uses (docs/contracts.md)."""

    def save_raw_payload(self, source: str, body: bytes, headers: Mapping[str, str]) -> str: ...

    def add_alert(self, alert: Alert) -> Alert: ...

    def open_incident_for(
        self, alert: Alert, severity: Severity, rule: str, runbook: str | None
    ) -> tuple[Incident, bool]: ...

    def find_open_incident(self, dedupe_key: str) -> Incident | None: ...

    def append_timeline(self, incident_id: str, entry: TimelineEntry) -> Any: ...


def dedupe_key(alert: Alert) -> str:
    """The key that groups alerts into one incident: the alert's fingerprint (already source-scoped)."""
    return alert.fingerprint


class StoreIngestor:
    """`Ingestor` on `runbook.store` + the intake's outbox. Thread-safe as far as the store is."""

    def __init__(
        self,
        store: IntakeStore,
        outbox: Outbox,
        config: IntakeConfig,
        *,
        router: Router | None = None,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.deployment = config.dispatch.deployment
        self.router = router or config.router()
        self.on_enqueued = on_enqueued

    def ingest(self, source: str, body: bytes, headers: Mapping[str, str], alerts: list[Alert]) -> Receipt:
        receipt = Receipt(raw_id=self.store.save_raw_payload(source, body, dict(headers)))
        enqueued = False
        for parsed in alerts:
            alert = self.store.add_alert(parsed.model_copy(update={"raw_ref": receipt.raw_id}))
            receipt.alerts += 1
            if alert.status is AlertStatus.RESOLVED:
                self._resolved(alert, receipt)
                continue
            verdict = triage(alert, self.router)
            incident, created = self.store.open_incident_for(
                alert, verdict.severity, verdict.rule, verdict.runbook
            )
            (receipt.created if created else receipt.joined_incidents).append(incident.id)
            if incident.flow_run_id is None:
                self.outbox.enqueue(incident.id, self.deployment)
                enqueued = True
        if enqueued and self.on_enqueued is not None:
            self.on_enqueued()
        return receipt

    def _resolved(self, alert: Alert, receipt: Receipt) -> None:
        incident = self.store.find_open_incident(dedupe_key(alert))
        if incident is None:
            receipt.unmatched_resolved += 1
            return
        self.store.append_timeline(
            incident.id,
            TimelineEntry(
                actor="intake",
                kind=ALL_CLEAR_KIND,
                message=f"{alert.source.value} says {alert.name!r} is resolved; verify before the all-clear",
                evidence={
                    "alert_id": alert.id,
                    "fingerprint": alert.fingerprint,
                    "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
                },
            ),
        )
        receipt.resolved.append(incident.id)

    def ready(self) -> tuple[bool, str]:
        try:
            self.outbox.ping()
        except Exception as exc:
            log.warning("readiness: store unreachable: %s", exc)
            return False, f"store unreachable: {type(exc).__name__}"
        return True, "store reachable"

    def queue_depth(self) -> float:
        try:
            return float(self.outbox.depth())
        except Exception:
            log.exception("metrics: cannot read the outbox depth")
            return float("nan")
