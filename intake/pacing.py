"""Pacing of the dispatcher: a token bucket for creations, exponential backoff with jitter for retries.

Usage::

    bucket = TokenBucket(rate_per_s=5, burst=10)
    if bucket.take(): ...            # else wait bucket.wait_s()
    bucket.grant(80)                 # a drain after an outage: 80 creations may go at once
    delay = backoff_delay(attempt, initial_s=0.5, max_s=60, rng=random.Random())

Hand-written: a few lines each, and no kept library paces an asyncio loop this way (intake/dispatch.py
uses them and re-exports them, their old home).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

__all__ = ["TokenBucket", "backoff_delay"]


def backoff_delay(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Delay before retry `attempt` (1, 2, ...): `initial * 2**(attempt-1)` capped at `max_s`, then
    "equal jitter" (half fixed, half random) so replicas do not retry in lockstep."""
    ceiling = min(max_s, initial_s * (2 ** max(0, min(attempt - 1, 30))))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class TokenBucket:
    """At most `burst` at once, refilled at `rate_per_s`; `grant(n)` tops it up once (a drain)."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_s
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        if self.tokens < self.capacity:  # a grant above the capacity is spent, not clipped
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def grant(self, tokens: int) -> None:
        """Have at least `tokens` free now, even above `burst` (the backlog released after an outage)."""
        self._refill()
        self.tokens = max(self.tokens, float(tokens))

    def wait_s(self) -> float:
        """Seconds until a token is free (0 if one is)."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> bool:
        """Take a token if one is free."""
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
