"""Helpers for the lifecycle tests: reading what the stand-ins recorded (waiting: `sandbox.testing.wait_for`)."""

from __future__ import annotations

from typing import Any

from sandbox.httpserver import RecordedRequest


def slack_calls(requests: list[RecordedRequest], method: str | None = None) -> list[RecordedRequest]:
    """Slack Web API requests (optionally of one method), in arrival order."""
    calls = [r for r in requests if r.path.startswith("/api/")]
    return [r for r in calls if method is None or r.path == f"/api/{method}"]


def body(request: RecordedRequest) -> dict[str, Any]:
    value = request.json()
    assert isinstance(value, dict), value
    return value
