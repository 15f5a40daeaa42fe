"""After a Prefect outage: notice the API answers again and make the whole backlog due at once.

Usage (the dispatcher does this; see intake/dispatch.py)::

    drain = Drain(outbox, config)
    drain.failed(exc)                    # a dispatch failed: an outage if Prefect could not answer
    released = drain.succeeded()         # a dispatch worked: after an outage, the backlog is due now
    wait_s = drain.idle_wait(wait_s)     # while rows back off after an outage: wake every probe_interval_s
    released = await drain.probe(check)  # ask the API (GET /api/health); if it answers, release

Why: each failed row waits out its own exponential backoff (up to `backoff_max_s`), so after the API
came back a backlog of 105 incidents took 50-128 s to drain, a P1 that arrived during the outage
included. The backoff is right while the API is down (it does not hammer a server that is away), wrong
once it is back. So the dispatcher remembers that it saw an outage (a connection error, a timeout, a
5xx or 429: `is_outage`; a missing deployment is not one), probes the API's health endpoint every
`probe_interval_s` while rows back off, and on the first answer (or the first dispatch that works)
makes every backing-off row due with one UPDATE (`Outbox.release_backoff`). The claim orders by the
incident's severity, then age, so the backlog drains P1 first. The token bucket is topped up to the
backlog (at most `drain_burst`), so pacing does not stretch the drain: the creations stay sequential.

Bounded: a release needs an outage seen since the last one, and releases that keep failing are spaced
by a doubling gap (`probe_interval_s`, 2x, ... up to `backoff_max_s`), reset by a dispatch that works;
a server whose health answers while its writes fail (SQLite `database is locked`) is not hammered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from intake.config import DispatchConfig
from intake.outbox import Outbox

__all__ = ["Drain", "is_outage"]

log = logging.getLogger("intake.dispatch")


def is_outage(exc: BaseException) -> bool:
    """True if the failure says the API did not answer (network, timeout, 5xx, 429), not "no such
    deployment" or "bad parameters": only an outage ends with the API answering again."""
    if isinstance(exc, (httpx.TransportError, TimeoutError, ConnectionError, OSError)):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return False


class Drain:
    """The dispatcher's memory of an outage, and the release of the backlog when it ends."""

    def __init__(
        self, outbox: Outbox, config: DispatchConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.clock = clock
        # Unknown at start: rows may be backing off from before a restart. The first idle probes once.
        self.outage = True
        self._gap_s = config.probe_interval_s
        self._not_before = 0.0

    def failed(self, exc: BaseException) -> None:
        if is_outage(exc):
            self.outage = True

    def succeeded(self) -> int:
        """A dispatch worked: if an outage was seen, release the backlog now; how many rows."""
        self._gap_s = self.config.probe_interval_s
        if not self.outage:
            return 0
        return self._release("a dispatch succeeded")

    def idle_wait(self, wait_s: float) -> float:
        """How long to idle: at most `probe_interval_s` while an outage is remembered."""
        return min(wait_s, self.config.probe_interval_s) if self.outage else wait_s

    async def probe(self, healthy: Callable[[], Awaitable[bool]], backing_off: bool) -> int:
        """While rows back off after an outage, ask the API; if it answers, release them; how many."""
        if not self.outage:
            return 0
        if not backing_off:
            self.outage = False  # nothing waits: nothing to release
            return 0
        if self.clock() < self._not_before:
            return 0
        try:
            ok = await asyncio.wait_for(healthy(), self.config.probe_timeout_s)
        except Exception as exc:  # a probe that fails is the outage going on
            log.debug("dispatcher: Prefect API health probe failed: %s", exc)
            return 0
        return await asyncio.to_thread(self._release, "the Prefect API answers again") if ok else 0

    def _release(self, why: str) -> int:
        self.outage = False
        self._not_before = self.clock() + self._gap_s
        self._gap_s = min(self.config.backoff_max_s, self._gap_s * 2)
        try:
            released = self.outbox.release_backoff()
        except Exception:
            log.exception("dispatcher: cannot release the backlog; rows keep their backoff")
            return 0
        if released:
            log.warning("dispatcher: %s: %d backing-off incidents are due now (P1 first)", why, released)
        return released
