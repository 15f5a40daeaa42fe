"""Helpers for the lifecycle tests: waiting on a condition, reading what the stand-ins recorded."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sandbox.httpserver import RecordedRequest


def wait_for(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.02) -> bool:
    """Poll `predicate` until it is truthy or `timeout_s` passes; returns its last value as a bool."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def slack_calls(requests: list[RecordedRequest], method: str | None = None) -> list[RecordedRequest]:
    """Slack Web API requests (optionally of one method), in arrival order."""
    calls = [r for r in requests if r.path.startswith("/api/")]
    return [r for r in calls if method is None or r.path == f"/api/{method}"]


def body(request: RecordedRequest) -> dict[str, Any]:
    value = request.json()
    assert isinstance(value, dict), value
    return value
