"""Helpers for the lifecycle tests: reading what the stand-ins recorded (waiting: `sandbox.testing.wait_for`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import get_client

from sandbox.httpserver import RecordedRequest


def slack_calls(requests: list[RecordedRequest], method: str | None = None) -> list[RecordedRequest]:
    """Slack Web API requests (optionally of one method), in arrival order."""
    calls = [r for r in requests if r.path.startswith("/api/")]
    return [r for r in calls if method is None or r.path == f"/api/{method}"]


def body(request: RecordedRequest) -> dict[str, Any]:
    value = request.json()
    assert isinstance(value, dict), value
    return value


def flow_run_state(run_id: str) -> str:
    """The Prefect flow run's state type (`"PAUSED"`, `"COMPLETED"`, ...), read from the API."""
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(run_id)).state
    return state.type.value if state else ""
