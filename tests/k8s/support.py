"""What the emulator tests share: the seeded workload's names and a bounded poll."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

NS = "prod"
NAME = "web"
IMAGE = "registry.local/emotionscare/web:1.4.2"
T0 = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)


def wait_for(predicate: Callable[[], object], timeout_s: float = 5.0, interval_s: float = 0.02) -> object:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)
