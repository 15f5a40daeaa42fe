"""A clock tests and drills can set and advance, for `Cluster(clock=...)`.

Usage::

    clock = ManualClock(datetime(2026, 7, 1, 12, tzinfo=UTC))
    cluster = Cluster(clock=clock)
    clock.advance(seconds=601)          # past a Deployment's progress deadline
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock"]


class ManualClock:
    """A callable returning a fixed aware UTC time until moved with `advance()` or `set()`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime.now(UTC)).astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        """Move forward by `seconds` (plus any `timedelta` keyword: minutes=, hours=)."""
        with self._lock:
            self._now += timedelta(seconds=seconds, **kwargs)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)
