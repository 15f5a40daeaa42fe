"""Durability first: what the intake commits to the store before it answers 202.

Usage::

    ingestor = StoreIngestor(store, outbox, config, on_enqueued=dispatcher.wake)
    receipt = ingestor.ingest("alertmanager", body, headers, alerts)     # then answer 202 with receipt
    results = ingestor.ingest_many([IngestRequest(...), ...])           # group commit: see below

One request is **one transaction** (`Store.transaction()`, the outbox joined to it): all of it is
committed, or nothing of it is. Its writes go through the store's `IngestWriter`
(runbook/store/ingest_writer.py), which runs at once only what must be answered (the incident upsert, a
replay-keyed payload) and sends the rest as one `executemany` per table when flushed. In this order:

1. the raw body (`raw_payload`), so even an alert we parse wrongly today can be replayed. A
   Sentry request whose `Request-ID` and body are already stored is a replay (`request_id_of`): the
   receipt says `duplicate_of` the first payload and nothing else is stored (Sentry still gets its 202);
2. a firing alert: classified and routed (intake/triage.py), then its incident on its service's
   dedupe key (intake/services.py: alias spellings of one service share it), the incidents of all the
   transaction's alerts in one `open_incidents` (one multi-row upsert; `_requests` says how the
   answers stay those of one upsert per alert in order): under concurrent
   callers with one dedupe key exactly one creates the incident, the others join it (`alert_count` + 1,
   and a higher severity raises the incident's level, logged as `severity_raised`). A storm of 1,000
   copies is one incident;
   An incident opened for a service the catalogue does not know gets a timeline entry of kind
   `service_not_in_catalogue` (respond escalates it and runs no runbook);
3. each normalised alert (pointing at the raw payload and its incident);
4. an incident without a flow run gets its outbox row (`Outbox.enqueue_many`, idempotent; once per
   incident per transaction, all of a transaction's rows in one statement);
5. a resolved alert whose incident is open adds the timeline entry of kind `source_resolved` to it:
   the mark for the all-clear path of the lifecycle. The `respond` flow verifies before it resolves.

Only after the commit does the caller answer 202. Any exception means nothing of the request was kept
(the app answers 503 "retry"), so a sender's retry never meets half of its own request.

`ingest_many` (group commit, for throughput): many requests in one transaction, their incidents one
multi-row upsert and their queued rows flushed once for the whole batch: a request that fails is rolled
back alone and gets its exception (the batch is redone with a SAVEPOINT per request, each with its own
upsert and flush inside its savepoint); the others get their receipts once the one commit is done (if
the commit fails, every request gets that error).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from intake.config import IntakeConfig
from intake.outbox import Outbox
from intake.services import dedupe_key, in_catalogue, not_in_catalogue_entry
from intake.triage import Router, triage
from runbook.catalogue import Catalogue
from runbook.models import Alert, AlertStatus, TimelineEntry
from runbook.store.ingest_writer import IncidentClaim, IngestWriter, OpenedIncident

__all__ = ["ALL_CLEAR_KIND", "IngestRequest", "Ingestor", "Receipt", "StoreIngestor", "request_id_of"]

log = logging.getLogger("intake.ingest")

ALL_CLEAR_KIND = "source_resolved"
"""Timeline kind that marks an incident for the all-clear path (the source says it is resolved)."""

_REPLAY_KEYED = {"sentry": "request-id"}
"""Sources whose requests carry a unique id, and its header: a repeat of one is a replay."""


@dataclass
class Receipt:
    """What one request did; the 202 body."""

    raw_id: str
    alerts: int = 0
    created: list[str] = field(default_factory=list)
    joined_incidents: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    unmatched_resolved: int = 0
    duplicate_of: str | None = None
    """A replay: the raw payload of the first request with the same request id; nothing was stored."""

    @property
    def joined(self) -> int:
        return len(self.joined_incidents)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "accepted": self.alerts,
            "raw_id": self.raw_id,
            "incidents_created": self.created,
            "incidents_joined": sorted(set(self.joined_incidents)),
            "incidents_marked_resolved": self.resolved,
            "resolved_without_open_incident": self.unmatched_resolved,
        }
        if self.duplicate_of is not None:
            body["duplicate_of"] = self.duplicate_of
        return body


@dataclass(frozen=True)
class IngestRequest:
    """One request for `ingest_many`: what `ingest` takes."""

    source: str
    body: bytes
    headers: Mapping[str, str]
    alerts: list[Alert]


class Ingestor(Protocol):
    """What the HTTP layer needs: store one request durably, say whether the store is reachable."""

    def ingest(
        self, source: str, body: bytes, headers: Mapping[str, str], alerts: list[Alert]
    ) -> Receipt: ...

    def ready(self) -> tuple[bool, str]: ...

    def queue_depth(self) -> float: ...


class IntakeStore(Protocol):
    """The part of `runbook.store.Store` the intake uses (docs/contracts.md)."""

    @property
    def database(self) -> Any: ...

    def transaction(self) -> AbstractContextManager[IntakeStore]: ...

    def savepoint(self) -> AbstractContextManager[IntakeStore]: ...

    def ingest_writer(self) -> IngestWriter:
        """The intake's writes in this transaction (runbook/store/ingest_writer.py)."""
        ...


def request_id_of(source: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """The key a replay of this request repeats, if the source sends a unique request id; else None.

    Sentry's `Request-ID` with the body's SHA-256: a replay repeats both (the signature covers the body,
    so a replayed request is the same bytes). A different body under a known id (which Sentry never
    sends) is stored, not dropped: an alert is never lost to a header.
    """
    name = _REPLAY_KEYED.get(source)
    found = None if name is None else next((v for k, v in headers.items() if k.lower() == name), None)
    if not found or not found.strip():
        return None
    return f"{found.strip()[:200]} sha256:{hashlib.sha256(body).hexdigest()}"


class _RequestFailed(Exception):
    """Raised inside the batch's transaction to roll it back when one of its requests failed."""

    exc: Exception | None = None


class StoreIngestor:
    """`Ingestor` on `runbook.store` + the intake's outbox, one transaction per request. Thread-safe."""

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
        self.catalogue: Catalogue | None = config.catalogue
        self.on_enqueued = on_enqueued

    def ingest(self, source: str, body: bytes, headers: Mapping[str, str], alerts: list[Alert]) -> Receipt:
        due: list[str] = []
        with self.store.transaction() as tx:
            writer = tx.ingest_writer()
            receipt = self._requests(writer, due, [IngestRequest(source, body, headers, alerts)])[0]
            self.outbox.joined(tx).enqueue_many(due, self.deployment)
            writer.flush()
        self._enqueued(bool(due))
        return receipt

    def ingest_many(self, requests: Sequence[IngestRequest]) -> list[Receipt | Exception]:
        """Many requests, one commit; a request that fails is rolled back alone and gets its exception.

        Returns, in order, each request's receipt or the exception that refused it. Only once this
        returns (after the commit) may any of them be answered 202.

        First all of them in one transaction without savepoints (two statements fewer per request: the
        common case, every request valid, costs ~20% less); if one fails, that transaction is rolled
        back and the batch is done again with a SAVEPOINT per request, so the others are still stored.
        A failed commit is not retried: every request gets its error (503), as one `ingest` would.
        """
        failed = _RequestFailed()
        due: list[str] = []
        try:
            with self.store.transaction() as tx:
                writer = tx.ingest_writer()
                try:
                    done: list[Receipt | Exception] = list(self._requests(writer, due, requests))
                except Exception as exc:  # roll all back; with one request, that is its answer
                    failed.exc = exc
                    raise failed from exc
                try:
                    self.outbox.joined(tx).enqueue_many(due, self.deployment)
                    writer.flush()
                except Exception as exc:  # a row of some request was refused: find which, one by one
                    failed.exc = exc
                    raise failed from exc
        except _RequestFailed:
            if len(requests) == 1 and failed.exc is not None:
                return [failed.exc]
            return self._isolated(requests)
        except Exception as exc:  # the commit itself failed: nothing of any request is stored
            log.warning("group commit of %d request(s) failed: %s", len(requests), exc)
            return [exc for _ in requests]
        self._enqueued(bool(due))
        return done

    def _isolated(self, requests: Sequence[IngestRequest]) -> list[Receipt | Exception]:
        """The batch again, a SAVEPOINT per request: one that fails is rolled back alone."""
        results: list[Receipt | Exception] = []
        enqueued = False
        try:
            with self.store.transaction() as tx:
                outbox = self.outbox.joined(tx)
                for r in requests:
                    due: list[str] = []
                    try:
                        with tx.savepoint() as part:
                            writer = part.ingest_writer()
                            receipt = self._requests(writer, due, [r])[0]
                            outbox.enqueue_many(due, self.deployment)
                            writer.flush()
                    except Exception as exc:  # this request only: the savepoint rolled it back
                        results.append(exc)
                        continue
                    results.append(receipt)
                    enqueued = enqueued or bool(due)
        except Exception as exc:  # the commit itself failed: nothing of any request is stored
            log.warning("group commit of %d request(s) failed: %s", len(requests), exc)
            return [exc for _ in requests]
        self._enqueued(enqueued)
        return results

    def _enqueued(self, enqueued: bool) -> None:
        if enqueued and self.on_enqueued is not None:
            self.on_enqueued()

    def _requests(self, tx: IngestWriter, due: list[str], requests: Sequence[IngestRequest]) -> list[Receipt]:
        """The requests' writes through `tx` (the caller flushes it before its transaction ends).

        In three passes, so that all their firing alerts' incidents are one upsert (`open_incidents`):
        each request's raw payload, triage and dedupe keys (`_plan`); the incidents; then, per request
        in order, its alerts, timeline entries and receipt (`_finish`). What is stored and answered is
        what the requests made one by one, alert by alert, would store and answer.

        The incidents that need their outbox row are appended to `due` (once per incident per writer):
        the caller enqueues them with one `Outbox.enqueue_many` before the flush, in the same transaction.
        """
        claimed: dict[str, IncidentClaim] = {}
        plans = [self._plan(tx, r, claimed) for r in requests]
        claims = [step for plan in plans for step in plan.steps if isinstance(step, IncidentClaim)]
        opened = {c.id: o for c, o in zip(claims, tx.open_incidents(claims), strict=True)}
        return [self._finish(tx, due, plan, opened) for plan in plans]

    def _plan(self, tx: IngestWriter, r: IngestRequest, claimed: dict[str, IncidentClaim]) -> _Plan:
        """Store the raw payload (or find it a replay); triage each alert; find resolved alerts' incidents.

        `claimed` holds the first claim of each dedupe key in this batch: a resolved alert after it
        belongs to that claim's incident (not yet upserted), as it would had the claim been upserted.
        """
        request_id = request_id_of(r.source, r.body, r.headers)
        raw_id, stored = tx.raw_payload(r.source, r.body, r.headers, request_id=request_id)
        if not stored:
            log.info("%s request %s replays raw payload %s: not stored again", r.source, request_id, raw_id)
            return _Plan(Receipt(raw_id=raw_id, duplicate_of=raw_id))
        plan = _Plan(Receipt(raw_id=raw_id))
        for alert in r.alerts:
            _let_the_loop_run()
            key = dedupe_key(alert, self.catalogue)
            if alert.status is AlertStatus.RESOLVED:
                earlier = claimed.get(key)
                found = None if earlier else tx.find_open_incident_id(key)
                plan.steps.append(_Resolved(alert, _all_clear_entry(alert), found, earlier))
                continue
            verdict = triage(alert, self.router)
            claim = IncidentClaim(
                alert, verdict.severity, verdict.rule, verdict.runbook, key or alert.fingerprint
            )
            claimed.setdefault(key, claim)
            plan.steps.append(claim)
        return plan

    def _finish(
        self,
        tx: IngestWriter,
        due: list[str],
        plan: _Plan,
        opened: Mapping[str, tuple[OpenedIncident, list[dict[str, Any]]]],
    ) -> Receipt:
        """Queue the request's alerts and timeline entries, in its alerts' order; fill in its receipt."""
        receipt = plan.receipt
        for step in plan.steps:
            _let_the_loop_run()
            receipt.alerts += 1
            if isinstance(step, _Resolved):
                tx.alert(step.alert, raw_ref=receipt.raw_id, incident_id=None)
                incident_id = step.open_id if step.after is None else opened[step.after.id][0].id
                if incident_id is None:
                    receipt.unmatched_resolved += 1
                    continue
                tx.timeline(incident_id, step.entry)
                receipt.resolved.append(incident_id)
                continue
            incident, rows = opened[step.id]
            tx.alert(step.alert, raw_ref=receipt.raw_id, incident_id=incident.id)
            tx.timeline_rows(rows)
            (receipt.created if incident.created else receipt.joined_incidents).append(incident.id)
            if incident.created and not in_catalogue(self.catalogue, step.alert.service):
                # dated with its claim, so it reads before what later alerts of this batch did to it
                tx.timeline(
                    incident.id, not_in_catalogue_entry(step.alert).model_copy(update={"at": step.at})
                )
            if incident.flow_run_id is None and tx.once(incident.id):
                due.append(incident.id)
        return receipt

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


@dataclass(frozen=True)
class _Resolved:
    """A resolved alert between `_plan` and `_finish`: its all-clear entry and where it goes."""

    alert: Alert
    entry: TimelineEntry
    open_id: str | None
    """The incident of its key open before this batch (None: none was)."""
    after: IncidentClaim | None
    """An earlier claim of its key in this batch: the entry goes to that claim's incident instead."""


@dataclass
class _Plan:
    """One request between `_plan` and `_finish`: its receipt so far and, per alert, its step."""

    receipt: Receipt
    steps: list[IncidentClaim | _Resolved] = field(default_factory=list)


def _all_clear_entry(alert: Alert) -> TimelineEntry:
    """The timeline entry of kind `source_resolved`: the mark for the all-clear path."""
    return TimelineEntry(
        actor="intake",
        kind=ALL_CLEAR_KIND,
        message=f"{alert.source.value} says {alert.name!r} is resolved; verify before the all-clear",
        evidence={
            "alert_id": alert.id,
            "fingerprint": alert.fingerprint,
            "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        },
    )


HAND_OVER_AFTER_S = 0.0005
"""CPU time of the writer thread between two hand-overs of the interpreter to the event loop.

History, each measured with tests/intake/test_intake_bounded.py (a 1,000-alert group beside
`/healthz`): every 16 alerts gave p99 14-51 ms in 10 runs and 62.7 ms in one CI run; every alert gave
p99 11-19 ms in 5 runs. But `time.sleep(0)` is not free: Linux rounds the zero sleep up by the thread's
timer slack (50 us), so a hand-over costs the writer 60-100 us of wall time even when the loop has
nothing to do, and with two per alert that was 0.16 ms of the writer's 0.8 ms per distinct alert (an
in-process batch of 8). Counting the writer's own CPU time instead of alerts keeps the gaps the loop
sees as short as every alert did for long alerts (a 1,000-alert group), and skips most hand-overs for
short ones (one-alert requests): p99 14.6-16.6 ms against 10.1-23.8 ms in 3 runs each, side by side."""

_writer = threading.local()


def _let_the_loop_run() -> None:
    """After `HAND_OVER_AFTER_S` of this thread's CPU since its last hand-over, give the GIL away.

    The writer thread plans and finishes a whole batch in pure Python, with no I/O in between since its
    incidents became one upsert; a thread that never waits keeps the GIL for the switch interval each
    time the event loop asks for it, and a request on the loop asks several times (once after each
    system call). Without a hand-over, `/healthz` p99 was 82-88 ms beside a 1,000-alert group.
    `time.sleep(0)` releases the GIL and takes it back; the thread's CPU clock (`time.thread_time`, ~1
    us to read) does not count the time it waits for the database or the GIL, so an idle writer does
    not hand over at the start of every batch.
    """
    used = time.thread_time()
    if used - getattr(_writer, "mark", 0.0) >= HAND_OVER_AFTER_S:
        time.sleep(0)
        _writer.mark = time.thread_time()
