"""Synthetic users of the service, so its metrics, logs and Sentry's error rate move as production's do.

Usage::

    traffic = SyntheticTraffic(lambda: service.url, rate_per_s=5).start()
    traffic.burst(20)          # 20 requests now; their status codes
    traffic.stop()
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["SyntheticTraffic"]


class SyntheticTraffic:
    """Users of the service: `rate_per_s` requests a second over the feature endpoints, in a fixed
    order (journal reads and writes, music, coach, playlists), in one thread. `burst(n)` sends `n` now.
    Failures (5xx, refused) are what the traffic is for: counted in `.failed`, never raised."""

    MIX: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
        ("GET", "/api/journal", None),
        ("POST", "/api/journal", {"body": "Slept well, calmer today.", "mood": "calm", "user_id": "u-1001"}),
        ("GET", "/api/journal", None),
        ("POST", "/api/music/generate", {"prompt": "calm evening"}),
        ("GET", "/api/music/playlists", None),
        ("POST", "/api/coach", {"message": "How do I handle stress at work?"}),
        ("GET", "/api/journal", None),
        (
            "POST",
            "/api/journal",
            {"body": "Busy day, a bit anxious.", "mood": "anxious", "user_id": "u-1002"},
        ),
    )

    def __init__(
        self,
        base_url: Callable[[], str],
        rate_per_s: float = 0.0,
        timeout_s: float = 5.0,
        every_1000: Callable[[], None] | None = None,
    ) -> None:
        self.base_url = base_url
        self.every_1000 = every_1000
        """Called after every 1000 requests (the world trims what its servers recorded)."""
        self.rate_per_s = rate_per_s
        self.timeout_s = timeout_s
        self.sent = 0
        self.failed = 0
        self._next = itertools.cycle(self.MIX)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SyntheticTraffic:
        if self.rate_per_s > 0 and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sandbox-traffic", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 5)
            self._thread = None

    def burst(self, count: int) -> list[int]:
        """Send `count` requests now, one after the other; their status codes (0: no answer)."""
        with httpx.Client(timeout=self.timeout_s) as http:
            return [self._one(http) for _ in range(count)]

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as http:
            while not self._stop.wait(1.0 / self.rate_per_s):
                self._one(http)

    def _one(self, http: httpx.Client) -> int:
        with self._lock:
            method, path, body = next(self._next)
        try:
            status = http.request(method, self.base_url() + path, json=body).status_code
        except httpx.HTTPError:
            status = 0
        with self._lock:
            self.sent += 1
            self.failed += 1 if status == 0 or status >= 500 else 0
            trim = self.every_1000 if self.sent % 1000 == 0 else None
        if trim is not None:
            trim()
        return status
