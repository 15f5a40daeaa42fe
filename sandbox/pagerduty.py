"""A PagerDuty Events API v2 stand-in: `POST /v2/enqueue`, answered as PagerDuty answers it.

Usage::

    pd = PagerDutyStandIn(routing_keys=["R0UTINGKEY0SANDBOX0000000000000A"]).start()
    httpx.post(f"{pd.url}/v2/enqueue", json={
        "routing_key": "R0UTINGKEY0SANDBOX0000000000000A", "event_action": "trigger",
        "dedup_key": "incident-42",
        "payload": {"summary": "emotionscare down", "source": "emotionscare", "severity": "critical"}})
    # -> 202 {"status": "success", "message": "Event processed", "dedup_key": "incident-42"}
    pd.alert("incident-42").status        # "triggered" -> "acknowledged" -> "resolved"
    pd.fail_next(1, "http_500")           # also "timeout" (delay_s) and "rate_limited" (429)
    held = pd.hold_next(landed=False)     # the next event hangs, never applied, until held.release()

Following PagerDuty's documentation (developer-docs, events-API-v2):
- `routing_key` (32-character integration key) and `event_action` (`trigger`, `acknowledge`,
  `resolve`) are required; a trigger needs `payload.summary`, `payload.source` and
  `payload.severity` (`critical`, `error`, `warning`, `info`); `dedup_key` at most 255 characters,
  summary at most 1024; acknowledge and resolve need a `dedup_key`.
- An invalid event is HTTP 400 `{"status": "invalid event", "message": "Event object is invalid",
  "errors": [...]}`, every problem listed; a well-formed routing key that no integration owns is the
  same 400 with `"Invalid routing key"` (what PagerDuty answers).
- A valid event is HTTP 202 `{"status": "success", "message": "Event processed", "dedup_key": ...}`;
  a trigger without `dedup_key` gets a generated one (a UUID hex). Events apply to the open alert with
  that `dedup_key` on the same routing key; once resolved, a trigger opens a new alert, while
  acknowledge/resolve events are dropped (still 202: the API is asynchronous).
- Rate limiting is HTTP 429 (PagerDuty: "Request Limit Exceeded").

`hold_next(landed=...)` (sandbox/holds.py) makes the next event hang until released: applied first and
only its answer held (`landed=True`), or never applied (`landed=False`); tests kill the sender there.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sandbox.holds import HeldCalls, Hold
from sandbox.httpserver import Request, Response, StandIn

__all__ = ["DEFAULT_ROUTING_KEY", "PagerDutyAlert", "PagerDutyStandIn"]

DEFAULT_ROUTING_KEY = "R0SANDBOX0ROUTING0KEY00000000001"

PagerDutyFault = Literal["http_500", "timeout", "rate_limited"]

_ACTIONS = ("trigger", "acknowledge", "resolve")
_SEVERITIES = ("critical", "error", "warning", "info")


@dataclass
class PagerDutyAlert:
    """One alert, as PagerDuty keeps it: opened by a trigger, closed by a resolve."""

    dedup_key: str
    routing_key: str
    summary: str
    source: str
    severity: str
    status: str = "triggered"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    trigger_count: int = 1
    payload: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every event applied to this alert, in order (the raw event body)."""

    @property
    def open(self) -> bool:
        return self.status != "resolved"


class PagerDutyStandIn(StandIn):
    """PagerDuty Events API v2 over HTTP, alerts kept in memory by `dedup_key`."""

    name = "pagerduty"

    def __init__(
        self,
        routing_keys: Iterable[str] = (DEFAULT_ROUTING_KEY,),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self.routing_keys = set(routing_keys)
        self.clock = clock
        self._lock = threading.Lock()
        self._alerts: list[PagerDutyAlert] = []
        self._dropped: list[dict[str, Any]] = []
        self.holds = HeldCalls()
        self.server.route("POST", "/v2/enqueue", self._enqueue)

    def _reset_state(self) -> None:
        self.holds.release_all()
        with self._lock:
            self._alerts.clear()
            self._dropped.clear()

    # -- reading state ------------------------------------------------------------------------------
    def alert(self, dedup_key: str) -> PagerDutyAlert | None:
        """The latest alert with this `dedup_key` (open or not); None if never triggered.

        The object is live: later events update it (read it, don't change it)."""
        with self._lock:
            for alert in reversed(self._alerts):
                if alert.dedup_key == dedup_key:
                    return alert
        return None

    def alerts(self, status: str | None = None) -> list[PagerDutyAlert]:
        """Every alert, oldest first, optionally only those in `status`."""
        with self._lock:
            return [a for a in self._alerts if status is None or a.status == status]

    @property
    def dropped_events(self) -> list[dict[str, Any]]:
        """Acknowledge/resolve events that matched no open alert (accepted, then dropped)."""
        with self._lock:
            return list(self._dropped)

    # -- a person on the PagerDuty side -------------------------------------------------------------
    def acknowledge_as_user(self, dedup_key: str) -> None:
        """Someone presses "Acknowledge" in the PagerDuty app; KeyError if no open alert."""
        with self._lock:
            alert = self._open_alert(dedup_key, None)
            if alert is None:
                raise KeyError(f"no open PagerDuty alert {dedup_key!r}")
            if alert.status == "triggered":
                alert.status = "acknowledged"
                alert.acknowledged_at = self.clock()

    # -- fault controls -----------------------------------------------------------------------------
    def fail_next(
        self,
        count: int = 1,
        kind: PagerDutyFault = "http_500",
        *,
        delay_s: float = 30.0,
        retry_after_s: int = 1,
    ) -> None:
        """The next `count` events fail: HTTP 500, a `delay_s` wait (client timeout), or HTTP 429."""
        if kind == "http_500":
            self.server.inject(
                count, Response.json({"status": "error", "message": "Internal Server Error"}, status=500)
            )
        elif kind == "timeout":
            self.server.inject(count, delay_s=delay_s)
        elif kind == "rate_limited":
            self.server.inject(
                count,
                Response.json(
                    {"status": "throttle event", "message": "Request Limit Exceeded"},
                    status=429,
                    headers={"Retry-After": str(retry_after_s)},
                ),
            )
        else:
            raise ValueError(f"unknown PagerDuty fault {kind!r} (http_500, timeout, rate_limited)")

    def hold_next(self, *, landed: bool = True) -> Hold:
        """The next event hangs until `release()` or `stop()`: applied first when `landed` (its answer
        held), never applied otherwise."""
        return self.holds.add("enqueue", landed=landed)

    def stop(self) -> None:
        self.holds.release_all()
        super().stop()

    # -- HTTP ---------------------------------------------------------------------------------------
    def _enqueue(self, request: Request) -> Response:
        hold = self.holds.take("enqueue")
        if hold is not None and not hold.landed:
            hold.wait()
            return Response.json({"status": "error", "message": "Service Unavailable"}, status=503)
        answer = self._accept(request)
        if hold is not None:
            hold.wait()
        return answer

    def _accept(self, request: Request) -> Response:
        try:
            event = json.loads(request.raw_body or b"")
        except (ValueError, UnicodeDecodeError):
            return _invalid(["Event object is not valid JSON"])
        if not isinstance(event, dict):
            return _invalid(["Event object must be a JSON object"])
        errors = _validate(event)
        if errors:
            return _invalid(errors)
        routing_key = str(event["routing_key"])
        if routing_key not in self.routing_keys:
            return _invalid(["Invalid routing key"])
        action = str(event["event_action"])
        dedup_key = str(event.get("dedup_key") or "") or uuid.uuid4().hex
        with self._lock:
            self._apply(action, routing_key, dedup_key, event)
        return Response.json(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, status=202
        )

    def _open_alert(self, dedup_key: str, routing_key: str | None) -> PagerDutyAlert | None:
        for alert in reversed(self._alerts):
            if (
                alert.dedup_key == dedup_key
                and alert.open
                and (routing_key is None or alert.routing_key == routing_key)
            ):
                return alert
        return None

    def _apply(self, action: str, routing_key: str, dedup_key: str, event: dict[str, Any]) -> None:
        now = self.clock()
        alert = self._open_alert(dedup_key, routing_key)
        if action == "trigger":
            payload = dict(event["payload"])
            if alert is None:
                self._alerts.append(
                    PagerDutyAlert(
                        dedup_key=dedup_key,
                        routing_key=routing_key,
                        summary=str(payload["summary"]),
                        source=str(payload["source"]),
                        severity=str(payload["severity"]),
                        created_at=now,
                        payload=payload,
                        events=[event],
                    )
                )
                return
            alert.trigger_count += 1  # a trigger log entry on the open alert; its state is unchanged
            alert.events.append(event)
            return
        if alert is None:
            self._dropped.append(event)
            return
        alert.events.append(event)
        if action == "acknowledge" and alert.status == "triggered":
            alert.status = "acknowledged"
            alert.acknowledged_at = now
        elif action == "resolve":
            alert.status = "resolved"
            alert.resolved_at = now


def _invalid(errors: list[str]) -> Response:
    return Response.json(
        {"status": "invalid event", "message": "Event object is invalid", "errors": errors}, status=400
    )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _validate(event: dict[str, Any]) -> list[str]:
    """Every problem with an Events API v2 alert event, in PagerDuty's words where known."""
    errors: list[str] = []
    routing_key = event.get("routing_key")
    if _blank(routing_key):
        errors.append("'routing_key' is missing or blank")
    elif not isinstance(routing_key, str):
        errors.append("'routing_key' must be a string")
    else:
        if len(routing_key) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        if not routing_key.isalnum():
            errors.append("'routing_key' cannot contain non-alphanumeric characters.")
    action = event.get("event_action")
    if _blank(action):
        errors.append("'event_action' is missing or blank")
    elif action not in _ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' must be a string")
    elif isinstance(dedup_key, str) and len(dedup_key) > 255:
        errors.append("'dedup_key' is too long (maximum is 255 characters)")
    if action in ("acknowledge", "resolve") and _blank(dedup_key):
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or blank")
        else:
            for name in ("summary", "source", "severity"):
                if _blank(payload.get(name)):
                    errors.append(f"'payload.{name}' is missing or blank")
            summary = payload.get("summary")
            if isinstance(summary, str) and len(summary) > 1024:
                errors.append("'payload.summary' is too long (maximum is 1024 characters)")
            severity = payload.get("severity")
            if not _blank(severity) and severity not in _SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                )
    return errors
