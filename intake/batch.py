"""Group commit on the app side: requests that arrive while a commit is running share the next one.

Usage::

    committer = GroupCommitter(ingestor.ingest_many, max_batch=64)
    async with anyio.create_task_group() as tg:
        tg.start_soon(committer.run)                      # the app's lifespan does this
        receipt = await committer.submit(IngestRequest("alertmanager", body, headers, alerts))

The store's `ingest_many(requests) -> list[Receipt | Exception]` commits a batch in one transaction and
says, per request, what it did or why it failed (the store decides how a failure of one is kept from
the others, e.g. a savepoint per request or a retry of the rest). Each request is answered only after
the commit that holds it: a 202 still means "committed".

A request may also be queued as a `Prepare` callable (the app does this for a small body): it is decoded
in the writer thread just before its batch is stored, saving a thread hop per request; its refusal
(e.g. 422) is its own answer and the rest of the batch is stored.

Batching takes what is queued when the writer is free, up to `max_batch`, and never waits for more:
an idle intake commits each request at once (no added latency); under load, the requests that arrived
during one commit go into the next. One writer, so SQLite sees one writer at a time instead of many
threads contending for its lock.

Hand-written because it is the app's side of the store's transaction (a queue, a thread hop, futures):
no library does that for an ASGI app. The queue and the answers are asyncio's own (`asyncio.Queue`, one
future per request): anyio's memory stream and `Event` cost ~10 us more per request (each call asks
which event loop runs it), and this runs once per alert; the writer thread is still started with
`anyio.to_thread.run_sync`, once per batch (a cancelled app waits for the batch in the writer to end).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio

from intake.ingest import IngestRequest, Receipt

__all__ = ["GroupCommitter", "IngestMany", "IngestRequest", "Prepare"]

log = logging.getLogger("intake.batch")


IngestMany = Callable[[Sequence[IngestRequest]], Sequence["Receipt | Exception"]]


Prepare = Callable[[], IngestRequest]
"""Builds a request in the writer thread (decodes a small body there): its exception is its answer."""


@dataclass
class _Pending:
    request: IngestRequest | Prepare
    answer: asyncio.Future[Receipt] = field(repr=False)


class GroupCommitter:
    """Queues requests; `run()` commits them in batches with `ingest_many`, in one writer thread."""

    def __init__(
        self,
        ingest_many: IngestMany,
        *,
        max_batch: int = 64,
        max_queue: int = 4096,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.ingest_many = ingest_many
        self.max_batch = max_batch
        self.on_batch = on_batch
        """Called on the event loop after each batch with its size and its seconds in the writer."""
        self.batches: list[int] = []
        """Sizes of the last batches committed (the last 1,000), for tests and metrics."""
        self.max_queue = max_queue
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(max_queue)
        """Made again by each `run()`, on the event loop that serves (an asyncio queue keeps its loop)."""
        self._writer = anyio.CapacityLimiter(1)
        self.running = False
        """True while `run()` is serving; the app falls back to one `ingest` per request otherwise."""

    async def submit(self, request: IngestRequest | Prepare) -> Receipt:
        """The request's receipt once its batch is committed; its exception if the store refused it.

        `request` may be a `Prepare` callable: it runs in the writer thread just before the batch is
        stored (one thread hop fewer for a small body than decoding it in a thread of its own); what it
        raises is that request's answer, and the rest of the batch goes on.
        """
        if not self.running:  # nothing would take it from the queue
            raise RuntimeError("the intake is stopping")
        pending = _Pending(request, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)  # waits while `max_queue` requests are queued
        return await pending.answer

    def queued(self) -> int:
        """Requests waiting for a batch (not counting the batch being stored)."""
        return self._queue.qsize()

    async def run(self) -> None:
        """Commit batches until cancelled (the app's lifespan runs it in its task group).

        Cancelled, it lets the batch in the writer thread end and answers it as usual; every request
        not yet in the writer (taken for the next batch, still queued, or submitted once it has ended)
        is answered with an error, the app's 503 "retry": none was stored, and none waits for a writer
        that is gone.
        """
        self._queue = asyncio.Queue(self.max_queue)
        self.running = True
        try:
            await self._serve()
        finally:
            self.running = False
            while not self._queue.empty():
                _answer(self._queue.get_nowait(), RuntimeError("the intake is stopping"))

    async def _serve(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._commit(batch)
            except BaseException:  # cancelled before its writer started: not stored, so "retry"
                for pending in batch:
                    _answer(pending, RuntimeError("the intake is stopping"))
                raise

    async def _commit(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            outcomes = await anyio.to_thread.run_sync(self._store, batch, limiter=self._writer)
        except Exception as exc:  # the whole batch failed: every request in it is answered 503
            log.exception("group commit of %d request(s) failed", len(batch))
            outcomes = [exc] * len(batch)
        self.batches = [*self.batches[-999:], len(batch)]
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - started)
        for pending, outcome in zip(batch, outcomes, strict=True):
            _answer(pending, outcome)

    def _store(self, batch: list[_Pending]) -> list[Receipt | Exception]:
        """In the writer thread: prepare what needs it, store the rest with one `ingest_many`."""
        outcomes: list[Receipt | Exception | None] = [None] * len(batch)
        ready: list[tuple[int, IngestRequest]] = []
        for i, pending in enumerate(batch):
            if isinstance(pending.request, IngestRequest):
                ready.append((i, pending.request))
                continue
            try:
                ready.append((i, pending.request()))
            except Exception as exc:  # this request's own answer (e.g. refused as invalid)
                outcomes[i] = exc
        if ready:
            try:
                stored = list(self.ingest_many([r for _, r in ready]))
                if len(stored) != len(ready):
                    raise RuntimeError(
                        f"ingest_many answered {len(stored)} outcomes for {len(ready)} requests"
                    )
            except Exception as exc:  # the whole batch failed: every request in it is answered 503
                log.exception("group commit of %d request(s) failed", len(ready))
                stored = [exc] * len(ready)
            for (i, _), outcome in zip(ready, stored, strict=True):
                outcomes[i] = outcome
        return [
            RuntimeError("a request was neither prepared nor stored") if o is None else o for o in outcomes
        ]


def _answer(pending: _Pending, outcome: Receipt | Exception) -> None:
    """Settle the request's future (unless its request went away: cancelled, nobody to answer)."""
    if pending.answer.done():
        return
    if isinstance(outcome, Exception):
        pending.answer.set_exception(outcome)
    else:
        pending.answer.set_result(outcome)
