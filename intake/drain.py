"""After a Prefect outage: notice the API answers again and make the whole backlog due at once.

Usage (the dispatcher does this; see intake/dispatch.py)::

    drain = Drain(outbox, config)
    drain.failed(exc)                    # a dispatch failed: an outage if Prefect could not answer
    drain.succeeded()                    # a dispatch worked
    if drain.outage:                     # claim nothing; ask the API every probe_interval_s
        backlog = await drain.probe(starter.healthy)    # None: still down; else the outage is over,
                                         # every backing-off row is due now (one UPDATE): the backlog

Why: each failed row waits out its own exponential backoff (up to `backoff_max_s`), so after the API
came back a backlog of 105 incidents took 50-128 s to drain, a P1 that arrived during the outage
included; and every attempt while the API is down costs ~1.5 s (the Prefect client's transport
retries a refused connection 3 times), one row after the other. So the dispatcher works as a circuit
breaker: a failure that says the API did not answer (a connection error, a timeout: `is_outage`; or
`OVERLOADS_IN_A_ROW` 5xx/429 answers with no creation working in between; one 503 of a busy
SQLite-backed server is only that row's backoff; a missing deployment is not an outage) stops the claims; the dispatcher then only probes the
API's health endpoint (`GET /api/health`) every `probe_interval_s`; alerts keep arriving into the
outbox meanwhile. On the first answer it makes every backing-off row due with one UPDATE
(`Outbox.release_backoff`) and claims again; the claim orders by the incident's severity, then age, so
the backlog drains P1 first. The token bucket is topped up to the backlog (at most `drain_burst`), so
pacing does not stretch the drain: the creations stay sequential, one at a time.

Bounded: when the breaker opens again before a dispatch worked (a server whose health answers while
its writes fail, SQLite's `database is locked`), the next probe waits a doubling gap
(`probe_interval_s`, 2x, ... up to `backoff_max_s`); a dispatch that works resets it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from intake.config import DispatchConfig
from intake.outbox import Outbox

__all__ = ["OVERLOADS_IN_A_ROW", "Drain", "is_outage", "is_overload"]

OVERLOADS_IN_A_ROW = 5
"""5xx/429 answers in a row (no creation working in between) that count as an outage."""

log = logging.getLogger("intake.dispatch")


def is_outage(exc: BaseException) -> bool:
    """True if the failure says the API did not answer (network, timeout), not "no such deployment",
    "bad parameters" or an overloaded server's 5xx (see `is_overload`)."""
    return isinstance(exc, (httpx.TransportError, TimeoutError))


def is_overload(exc: BaseException) -> bool:
    """A 5xx or 429: the server is there but refused this one (SQLite's `database is locked` is a 503)."""
    return isinstance(exc, httpx.HTTPStatusError) and (
        exc.response.status_code >= 500 or exc.response.status_code == 429
    )


class Drain:
    """The dispatcher's memory of an outage (a circuit breaker), and the release of the backlog."""

    def __init__(
        self, outbox: Outbox, config: DispatchConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.clock = clock
        # Unknown at start: probe before the first claim; rows backing off from before a restart are
        # released by that first answer.
        self.outage = True
        self._gap_s = config.probe_interval_s
        self._next_probe = 0.0
        self._overloads = 0

    def failed(self, exc: BaseException) -> None:
        """A dispatch failed; if the API did not answer, stop claiming until a probe says it does."""
        self._overloads = self._overloads + 1 if is_overload(exc) else 0
        down = is_outage(exc) or self._overloads >= OVERLOADS_IN_A_ROW
        if down and not self.outage:
            self.outage = True
            self._overloads = 0
            # Back off the probe if the last release was not followed by a dispatch that worked.
            self._next_probe = self.clock() + self._gap_s
            self._gap_s = min(self.config.backoff_max_s, self._gap_s * 2)

    def succeeded(self) -> None:
        """A dispatch worked: the next outage is probed at the normal pace again."""
        self._gap_s = self.config.probe_interval_s
        self._overloads = 0

    def wait_s(self) -> float:
        """Seconds until the next probe is allowed (0: now)."""
        return max(0.0, self._next_probe - self.clock())

    async def probe(self, healthy: Callable[[], Awaitable[bool]] | None) -> int | None:
        """During an outage, ask the API (at most every `probe_interval_s`); if it answers, end the
        outage and release the backlog: how many rows wait now (the drain's size). None: still down."""
        if not self.outage:
            return 0
        if self.wait_s() > 0:
            return None
        self._next_probe = self.clock() + self.config.probe_interval_s
        if healthy is not None:  # a starter without a probe: its first dispatch tells
            try:
                ok = await asyncio.wait_for(healthy(), self.config.probe_timeout_s)
            except Exception as exc:  # a probe that fails is the outage going on
                log.debug("dispatcher: Prefect API health probe failed: %s", exc)
                return None
            if not ok:
                return None
        self.outage = False
        return await asyncio.to_thread(self._release)

    def _release(self) -> int:
        try:
            released = self.outbox.release_backoff()
            backlog = self.outbox.depth()
        except Exception:
            log.exception("dispatcher: cannot release the backlog; rows keep their backoff")
            return 0
        if backlog:
            log.warning(
                "dispatcher: the Prefect API answers: %d incidents wait (%d were backing off), P1 first",
                backlog,
                released,
            )
        return backlog
