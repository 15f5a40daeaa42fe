"""The lifecycle tests' view of the sandbox world: open incidents, drive traffic, read what was sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx

from runbook.models import Alert, AlertSource, Incident, IncidentRef, Signals
from runbook.severity import Severity
from sandbox.httpserver import RecordedRequest
from sandbox.world import World
from tasks import runtime

FAST_RUNBOOK = {
    "settle_s": 0.0,
    "poll_interval_s": 0.05,
    "ready_deadline_s": 20.0,
    "verify_deadline_s": 5.0,
    "sample_interval_s": 0.1,
    "samples": 3,
    "window_s": 60.0,
}


def open_incident(
    severity: Severity,
    *,
    name: str = "ServiceDown",
    runbook: str | None = None,
    title: str = "emotionscare down",
    starts_at: datetime | None = None,
    annotations: dict[str, str] | None = None,
    security: bool = False,
) -> Incident:
    """An incident as intake would open it (alert stored, incident created)."""
    store = runtime.store()
    alert = store.add_alert(
        Alert(
            source=AlertSource.ALERTMANAGER,
            fingerprint=f"test:{name}:{severity}",
            name=name,
            service="emotionscare",
            annotations={"summary": title, **(annotations or {})},
            starts_at=starts_at,
            signals=Signals(),
        )
    )
    incident, created = store.open_incident_for(alert, severity, "test.rule", runbook, security=security)
    assert created
    return incident


def ref(incident: Incident) -> IncidentRef:
    return IncidentRef(incident_id=incident.id, service=incident.service, severity=incident.severity)


@contextmanager
def traffic(
    world: World, requests: list[tuple[str, str, dict[str, Any] | None]], interval_s: float = 0.01
) -> Iterator[None]:
    """Users using the service in the background (method, path, body), until the block ends."""
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                for method, path, body in requests:
                    try:
                        http.request(method, world.service.url + path, json=body)
                    except httpx.HTTPError:
                        pass  # the service being down is what some tests are about
                    if stop.wait(interval_s):
                        return

    thread = threading.Thread(target=run, name="test-traffic", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def burst(world: World, requests: list[tuple[str, str, dict[str, Any] | None]], times: int) -> None:
    """`times` rounds of `requests`, synchronously (traffic already in the metrics when it returns)."""
    with httpx.Client(timeout=10) as http:
        for _ in range(times):
            for method, path, body in requests:
                http.request(method, world.service.url + path, json=body)


def posts(world: World) -> list[RecordedRequest]:
    return [r for r in world.slack.requests if r.path == "/api/chat.postMessage"]


def text_of(request: RecordedRequest) -> str:
    value = request.json()
    return str(value.get("text", ""))
