"""Sentry reads (httpx): the latest unresolved issues, an issue's latest event and stack trace.

Usage::

    issues = list_unresolved_issues.fn(api_url, org, project, token, limit=5)
    event = get_latest_event.fn(api_url, issues[0].id, token)
    event.frames[-1]          # the innermost frame: "app/journal.py in create_entry at line 42"

The guide's Assessment: "Open Sentry dashboard; check error message and stack trace". Reads retry on
transient failures only; a 401 or 404 fails at once with Sentry's own reason.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from pydantic import BaseModel, SecretStr

from runbook.errors import RunbookError
from tasks.clients import new_http_client
from tasks.retry import read_task_options

__all__ = [
    "SentryEventSummary",
    "SentryFailed",
    "SentryIssueSummary",
    "get_latest_event",
    "list_unresolved_issues",
]


class SentryFailed(RunbookError):
    """Sentry answered with an error (bad token, unknown project) or could not be reached."""


class SentryIssueSummary(BaseModel):
    id: str
    title: str
    culprit: str = ""
    level: str = "error"
    count: int = 0
    user_count: int = 0
    last_seen: str = ""
    permalink: str = ""


class SentryEventSummary(BaseModel):
    issue_id: str
    message: str
    exception_type: str = ""
    frames: list[str] = []

    def stack_text(self) -> str:
        return "\n".join(["Traceback (innermost last):", *[f"  {f}" for f in self.frames]])


def _get(url: str, token: SecretStr, params: dict[str, Any] | None, timeout_s: float) -> Any:
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
    with new_http_client(timeout_s) as http:
        response = http.get(url, params=params, headers=headers)
    if response.status_code >= 500 or response.status_code == 429:
        response.raise_for_status()  # transient: HTTPStatusError, retried
    if response.status_code >= 400:
        try:
            reason = response.json().get("detail", response.text)
        except ValueError:
            reason = response.text
        raise SentryFailed(f"Sentry {response.status_code} for {url}: {reason}")
    return response.json()


@task(name="list_unresolved_issues", **read_task_options(retries=2))
def list_unresolved_issues(
    api_url: str, org: str, project: str, token: SecretStr, limit: int = 5, timeout_s: float = 10.0
) -> list[SentryIssueSummary]:
    """The project's unresolved issues, most recently seen first (Sentry's issue list)."""
    url = f"{api_url.rstrip('/')}/projects/{org}/{project}/issues/"
    data = _get(url, token, {"query": "is:unresolved", "statsPeriod": "24h"}, timeout_s)
    issues = [
        SentryIssueSummary(
            id=str(item["id"]),
            title=item.get("title", ""),
            culprit=item.get("culprit") or "",
            level=item.get("level", "error"),
            count=int(item.get("count") or 0),
            user_count=int(item.get("userCount") or 0),
            last_seen=item.get("lastSeen", ""),
            permalink=item.get("permalink", ""),
        )
        for item in data
    ]
    return issues[:limit]


@task(name="get_latest_event", **read_task_options(retries=2))
def get_latest_event(
    api_url: str, issue_id: str, token: SecretStr, timeout_s: float = 10.0
) -> SentryEventSummary:
    """An issue's latest event: its message and stack frames (innermost last)."""
    data = _get(f"{api_url.rstrip('/')}/issues/{issue_id}/events/latest/", token, None, timeout_s)
    frames: list[str] = []
    exc_type = ""
    for entry in data.get("entries", []):
        if entry.get("type") != "exception":
            continue
        for value in entry.get("data", {}).get("values", []):
            exc_type = value.get("type") or exc_type
            for frame in (value.get("stacktrace") or {}).get("frames", []):
                where = f"{frame.get('filename', '?')} in {frame.get('function', '?')}"
                frames.append(f"{where} at line {frame.get('lineNo', '?')}")
    return SentryEventSummary(
        issue_id=issue_id,
        message=data.get("message") or data.get("title", ""),
        exception_type=exc_type,
        frames=frames,
    )
