"""The dispatcher: one `respond` flow run per incident, from the outbox, paced, retried, resumable.

Usage::

    dispatcher = Dispatcher(outbox, store, config.dispatch, metrics)
    with dispatcher:                 # a background thread of the intake process
        dispatcher.wake()            # new work was enqueued (the intake calls this after a 202)
    dispatcher.run_once()            # or one pass by hand (tests, `python -m intake dispatch`)

Exactly once (docs/intake.md, "Dispatch"): the run is created as
`run_deployment(name, parameters, timeout=0, idempotency_key=f"{deployment}:{incident_id}")` creates it
(`PrefectStarter.start`: the same client call, the deployment's id read once).
Prefect's idempotency keys are scoped per flow, so the key carries the deployment name; any retry,
replay, or second replica asking for the same incident gets the same flow run back. The run id is
stored on the incident (`Store.update_incident(id, flow_run_id=...)`) and the outbox row is closed.

While Prefect is unreachable (or answers 5xx, or the deployment does not exist yet) the row is
retried with exponential backoff and jitter, capped at `backoff_max_s`, never dropped: what was
acknowledged is dispatched eventually. Creations are paced by a token bucket (`rate_per_s`,
`burst`), so a storm never floods the Prefect server (a SQLite-backed one answers 503 under load);
the storm itself is absorbed earlier, by dedupe into one incident. A restart resumes from the outbox:
rows whose lease expired are claimed again.

Two helpers keep an outage short (docs/intake.md, "Dispatch"): `Drain` (intake/drain.py) notices the
API answers again (a health probe every `probe_interval_s` while rows back off, or the first dispatch
that works) and makes the whole backlog due at once, P1 first; `LeaseKeeper` (intake/lease.py) renews
the short leases of the rows this dispatcher holds, so a dead replica's rows are free within `lease_s`.

The one Prefect call it makes (`PrefectStarter`, `idempotency_key`, `respond_parameters`) lives in
intake/starter.py (re-exported here); pacing (intake/pacing.py), the outage breaker (intake/drain.py)
and the leases (intake/lease.py) are their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
import uuid
from typing import Any, Protocol

from intake.config import DispatchConfig
from intake.drain import Drain
from intake.errors import DispatchFailed
from intake.lease import LeaseKeeper
from intake.metrics import IntakeMetrics
from intake.outbox import Outbox, OutboxItem
from intake.pacing import TokenBucket, backoff_delay
from intake.starter import FlowStarter, PrefectStarter, idempotency_key, prefect_api_url, respond_parameters
from runbook.errors import NotFound
from runbook.models import Incident, TimelineEntry

__all__ = [
    "Dispatcher",
    "FlowStarter",
    "PrefectStarter",
    "TokenBucket",
    "backoff_delay",
    "idempotency_key",
    "respond_parameters",
]

log = logging.getLogger("intake.dispatch")


class IncidentStore(Protocol):
    """What the dispatcher needs of `runbook.store.Store`."""

    def get_incident(self, incident_id: str) -> Incident: ...

    def update_incident(self, incident_id: str, **fields: Any) -> Incident: ...

    def append_timeline(self, incident_id: str, entry: TimelineEntry) -> Any: ...


class Dispatcher:
    """Works the outbox in a background thread (its own asyncio loop). See the module docstring."""

    def __init__(
        self,
        outbox: Outbox,
        store: IncidentStore,
        config: DispatchConfig,
        metrics: IntakeMetrics | None = None,
        *,
        starter: FlowStarter | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.outbox = outbox
        self.store = store
        self.config = config
        self.metrics = metrics or IntakeMetrics()
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.rng = rng or random.Random()
        self.bucket = TokenBucket(config.rate_per_s, config.burst)
        self.drain = Drain(outbox, config)
        self.leases = LeaseKeeper(outbox, self.owner, config.lease_s, config.renew_every_s)
        self._starter = starter
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def starter(self) -> FlowStarter:
        if self._starter is None:
            api_url = self.config.api_url or prefect_api_url()
            if not api_url:
                raise DispatchFailed("no Prefect API URL: set prefect.api_url (or PREFECT_API_URL)")
            self._starter = PrefectStarter(api_url, request_timeout_s=self.config.request_timeout_s)
        return self._starter

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._thread_main, name="intake-dispatcher", daemon=True)
        self._thread.start()
        # An alert stored before the loop exists would wait for the idle poll (wake() needs the loop):
        # the first one after a start was dispatched 1.0-1.7 s late (docs/latency.md). Wait for it.
        if not self._ready.wait(timeout=10):
            log.warning("dispatcher loop not ready after 10 s; alerts are picked up by the idle poll")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to finish its current creation and exit; wait up to `timeout_s`."""
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("dispatcher thread did not stop within %.1f s", timeout_s)
            self._thread = None

    def __enter__(self) -> Dispatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wake(self) -> None:
        """New work may be waiting: skip the idle wait (thread-safe, cheap)."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop closed between the check and the call
                log.debug("dispatcher loop already closed")

    # -- the loop ----------------------------------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # recorded and logged: the thread must not die silently
            self.error = exc
            log.exception("dispatcher stopped on an error")
        finally:
            self._ready.set()  # never leave start() waiting for a loop that will not come

    async def _main(self) -> None:
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._ready.set()
        starter = self.starter()
        try:
            # Our backoff replaces the client's own retries (they would hold a row for minutes).
            with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: self.config.client_max_retries}):
                warm = getattr(starter, "warm", None)
                if warm is not None:  # bounded: stored work must not wait long on a slow server
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(warm(self.config.deployment), timeout=3.0)
                async with self._heartbeat():
                    while not self._stopping.is_set():
                        if not await self._api_answers(starter):
                            await self._idle()  # an outage: claim nothing, probe again later
                            continue
                        if await self._pass(starter) == 0:
                            await self._idle()
        finally:
            await starter.aclose()
            self._loop = None

    @contextlib.asynccontextmanager
    async def _heartbeat(self) -> Any:
        """Renew the held leases while the body runs; give back what is still held when it ends."""
        task = asyncio.create_task(self.leases.run(), name="intake-dispatcher-leases")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.leases.release_all()

    async def _api_answers(self, starter: FlowStarter) -> bool:
        """False during an outage (intake/drain.py); at its end, the backlog is due and paced at once."""
        backlog = await self.drain.probe(getattr(starter, "healthy", None))
        if backlog is None:
            return False
        if backlog:  # the drain goes at the server's pace (one creation at a time), not `rate_per_s`
            self.bucket.grant(min(backlog, self.config.drain_burst))
        return True

    async def _idle(self) -> None:
        if self._wake is None:
            raise RuntimeError("the dispatcher's loop is not running")
        wait_s = self.config.idle_poll_s
        if self.drain.outage:  # due rows wait for the API: only the next probe matters
            wait_s = min(wait_s, self.drain.wait_s() or self.config.probe_interval_s)
        else:
            due = await asyncio.to_thread(self._next_due_in)
            if due is not None:
                wait_s = max(0.0, min(wait_s, due))
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=wait_s)
        except TimeoutError:
            pass  # the idle period ended: poll the outbox (other replicas may have enqueued work)
        self._wake.clear()

    def _next_due_in(self) -> float | None:
        try:
            due = self.outbox.next_due_at()
        except Exception:
            log.exception("dispatcher: outbox unavailable")
            return None
        return None if due is None else due - self.outbox.clock()

    async def _pass(self, starter: FlowStarter) -> int:
        try:
            items = await asyncio.to_thread(
                self.outbox.claim, self.owner, self.config.lease_s, self.config.batch
            )
        except Exception:
            log.exception("dispatcher: cannot claim from the outbox")
            return 0
        self.leases.hold(item.incident_id for item in items)
        # Up to `concurrency` creations at once, started in the claim's order (P1 first, then oldest).
        slots = asyncio.Semaphore(self.config.concurrency)

        async def one(item: OutboxItem) -> bool:
            async with slots:
                if self._stopping.is_set() or self.drain.outage:
                    return False  # given back below: another replica, or the drain, takes it
                await self._paced()
                try:
                    await self._dispatch(starter, item)
                finally:
                    self.leases.drop(item.incident_id)
                return True

        handled = sum(await asyncio.gather(*(one(item) for item in items)))
        await self.leases.release_all()
        return handled

    async def _paced(self) -> None:
        while not self.bucket.take() and not self._stopping.is_set():
            await asyncio.sleep(self.bucket.wait_s())

    async def _dispatch(self, starter: FlowStarter, item: OutboxItem) -> None:
        started = time.perf_counter()
        try:
            incident = await asyncio.to_thread(self.store.get_incident, item.incident_id)
        except NotFound:
            log.error(
                "dispatcher: incident %s is not in the store; dropping its outbox row", item.incident_id
            )
            await asyncio.to_thread(self.outbox.complete, item.incident_id, "")
            return
        except Exception as exc:
            await self._failed(item, exc)
            return
        if incident.flow_run_id:  # already dispatched (by another replica, or before a crash)
            await asyncio.to_thread(self.outbox.complete, item.incident_id, incident.flow_run_id)
            return
        key = idempotency_key(item.deployment, incident.id)
        try:
            flow_run_id = await asyncio.wait_for(
                starter.start(item.deployment, respond_parameters(incident), key),
                self.config.request_timeout_s,
            )
            await asyncio.to_thread(self._record, incident, item, flow_run_id)
        except Exception as exc:
            await self._failed(item, exc)
            return
        self.drain.succeeded()
        self.metrics.dispatch.labels(outcome="dispatched").inc()
        self.metrics.dispatch_seconds.observe(time.perf_counter() - started)
        log.info("dispatched incident %s -> flow run %s (%s)", incident.id, flow_run_id, item.deployment)

    def _record(self, incident: Incident, item: OutboxItem, flow_run_id: str) -> None:
        self.store.update_incident(incident.id, flow_run_id=flow_run_id)
        self.store.append_timeline(
            incident.id,
            TimelineEntry(
                actor="intake",
                kind="dispatch",
                message=f"respond flow run started ({item.deployment})",
                evidence={"flow_run_id": flow_run_id, "deployment": item.deployment},
            ),
        )
        self.outbox.complete(incident.id, flow_run_id)

    async def _failed(self, item: OutboxItem, exc: BaseException) -> None:
        self.metrics.dispatch.labels(outcome="failed").inc()
        self.drain.failed(exc)
        error = f"{type(exc).__name__}: {exc}"[:2000]
        delay = backoff_delay(
            item.attempts + 1, self.config.backoff_initial_s, self.config.backoff_max_s, self.rng
        )
        log.warning(
            "dispatch of incident %s failed (attempt %d), retry in %.2f s: %s",
            item.incident_id,
            item.attempts + 1,
            delay,
            error,
        )
        try:
            await asyncio.to_thread(self.outbox.fail, item.incident_id, error, self.outbox.clock() + delay)
        except Exception:
            log.exception("dispatcher: cannot record the failure; the lease expires and the row is retried")

    # -- by hand -----------------------------------------------------------------------------------
    def run_once(self) -> int:
        """One pass over the due rows in the calling thread; returns how many were handled."""

        async def one() -> int:
            from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

            starter = self.starter()
            try:
                with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: self.config.client_max_retries}):
                    async with self._heartbeat():
                        self.drain.outage = False  # by hand: try the rows, whatever the last pass saw
                        return await self._pass(starter)
            finally:
                await starter.aclose()

        return asyncio.run(one())
