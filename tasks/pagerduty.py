"""PagerDuty Events API v2 over httpx: trigger, acknowledge and resolve one alert per incident.

Usage (inside a flow; outside one call `.fn`)::

    trigger_page(dedup_key=incident.pagerduty_dedup_key, summary="[P1] emotionscare down",
                 source="emotionscare", severity="critical", details={"incident": incident.id})
    acknowledge_page(dedup_key)          # a person acknowledged in Slack
    resolve_page(dedup_key)              # the all-clear

One `dedup_key` per incident for its whole life: every event of the incident names it, so PagerDuty
keeps one alert (a second trigger on an open alert is a log entry on it, not a second page), and so
every event can be retried safely. The routing key comes from `settings.pagerduty.routing_key` (a
`SecretStr`), sent only in the JSON body PagerDuty requires; it never reaches a log, an exception or
a result. Unset: `PagerDutyNotConfigured` at once (the caller records the page as undelivered).

Answers: 202 accepted; 400 an invalid event (permanent, PagerDuty's `errors` in the message);
429 and 5xx, timeouts and refused connections are transient (`tasks.retry.is_transient`) and retried
by the declared policy `tasks.retry.RETRY`, the same as Slack's (stamina: 3 attempts, exponential
backoff, Retry-After honoured up to a cap; `RUNBOOK_RETRY_BACKOFF_SCALE=0` removes the waits in
tests). Prefect itself does not retry these tasks: the retry policy here is the only one.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from runbook.errors import RunbookError
from tasks import runtime
from tasks.clients import http_client
from tasks.retry import RETRY, RetryPolicy, is_transient_status, retried, retry_after_s

__all__ = [
    "EventAction",
    "PagerDutyEvent",
    "PagerDutyFailed",
    "PagerDutyNotConfigured",
    "PagerDutySeverity",
    "acknowledge_page",
    "resolve_page",
    "send_event",
    "trigger_page",
]

EventAction = Literal["trigger", "acknowledge", "resolve"]
PagerDutySeverity = Literal["critical", "error", "warning", "info"]


class PagerDutyFailed(RunbookError):
    """An event was not accepted: `.error` says why (PagerDuty's message, `http_503`, `ReadTimeout`)."""

    def __init__(
        self,
        action: str,
        error: str,
        *,
        transient: bool,
        retry_after_s: float | None = None,
        attempts: int = 1,
    ) -> None:
        self.action = action
        self.error = error
        self.transient = transient
        self.retry_after_s = retry_after_s
        self.attempts = attempts
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"PagerDuty {action}: {error}{tries}")


class PagerDutyNotConfigured(PagerDutyFailed):
    """No routing key in the settings: nothing can be delivered."""

    def __init__(self, action: str) -> None:
        super().__init__(action, "not_configured (RUNBOOK_PAGERDUTY_ROUTING_KEY is unset)", transient=False)


class PagerDutyEvent(BaseModel):
    """An event PagerDuty accepted."""

    action: EventAction
    dedup_key: str
    status: str
    message: str
    attempts: int = 1


def _once(http: httpx.Client, url: str, action: str, event: dict[str, Any]) -> dict[str, Any]:
    """One POST of one event; raises `PagerDutyFailed` for every kind of failure."""
    try:
        response = http.post(url, json=event)
    except httpx.TransportError as exc:
        raise PagerDutyFailed(action, type(exc).__name__, transient=True) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 202:
        return body
    if response.status_code == 429:
        raise PagerDutyFailed(
            action, "rate limited (429)", transient=True, retry_after_s=retry_after_s(response)
        )
    if response.status_code >= 500 or is_transient_status(response.status_code):
        transient = is_transient_status(response.status_code)
        raise PagerDutyFailed(action, f"http_{response.status_code}", transient=transient)
    errors = "; ".join(str(e) for e in body.get("errors", [])) or str(body.get("message", ""))
    raise PagerDutyFailed(action, f"http_{response.status_code}: {errors}".rstrip(": "), transient=False)


def send_event(
    action: EventAction,
    dedup_key: str,
    *,
    summary: str | None = None,
    source: str | None = None,
    severity: PagerDutySeverity = "critical",
    component: str | None = None,
    group: str | None = None,
    details: dict[str, Any] | None = None,
    links: list[dict[str, str]] | None = None,
    policy: RetryPolicy = RETRY,
) -> PagerDutyEvent:
    """Send one Events API v2 event (the plain function behind the tasks; usable from any thread)."""
    if not dedup_key.strip():
        raise ValueError("dedup_key: every event of an incident carries its dedup_key")
    if action == "trigger" and not (summary and source):
        raise ValueError("summary and source: a trigger needs both")
    settings = runtime.settings()
    pd = settings.pagerduty
    if pd.routing_key is None:
        raise PagerDutyNotConfigured(action)
    event: dict[str, Any] = {
        "routing_key": pd.routing_key.get_secret_value(),
        "event_action": action,
        "dedup_key": dedup_key,
    }
    if action == "trigger":
        payload: dict[str, Any] = {"summary": str(summary)[:1024], "source": source, "severity": severity}
        if component:
            payload["component"] = component
        if group:
            payload["group"] = group
        if details:
            payload["custom_details"] = details
        event["payload"] = payload
        if links:
            event["links"] = links
    with http_client(settings, timeout_s=pd.timeout_s) as http:
        try:
            body, attempts = retried(policy, lambda: _once(http, str(pd.events_url), action, event))
        except PagerDutyFailed as failure:
            raise PagerDutyFailed(
                action, failure.error, transient=failure.transient, attempts=failure.attempts
            ) from failure
    return PagerDutyEvent(
        action=action,
        dedup_key=str(body.get("dedup_key") or dedup_key),
        status=str(body.get("status", "success")),
        message=str(body.get("message", "")),
        attempts=attempts,
    )


@task(name="trigger_page", cache_policy=NO_CACHE)
def trigger_page(
    dedup_key: str,
    summary: str,
    source: str,
    severity: PagerDutySeverity = "critical",
    details: dict[str, Any] | None = None,
    links: list[dict[str, str]] | None = None,
) -> PagerDutyEvent:
    """Page: open (or add to) the incident's one PagerDuty alert."""
    return send_event(
        "trigger", dedup_key, summary=summary, source=source, severity=severity, details=details, links=links
    )


@task(name="acknowledge_page", cache_policy=NO_CACHE)
def acknowledge_page(dedup_key: str) -> PagerDutyEvent:
    """A person took the incident: acknowledge its PagerDuty alert."""
    return send_event("acknowledge", dedup_key)


@task(name="resolve_page", cache_policy=NO_CACHE)
def resolve_page(dedup_key: str) -> PagerDutyEvent:
    """All clear: resolve the incident's PagerDuty alert."""
    return send_event("resolve", dedup_key)
