"""The JSON the Sentry stand-in answers with: a project, an issue (with its stats), an event.

Field for field what `https://sentry.io/api/0/` sends for these objects (counts as strings where Sentry
sends strings, times in UTC with a `Z`). Callers hold the stand-in's lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.sentry.model import SentryEvent, SentryIssue, iso

if TYPE_CHECKING:
    from sandbox.sentry.standin import SentryStandIn

__all__ = ["event_json", "issue_json", "project_json"]


def project_json(sentry: SentryStandIn, slug: str) -> dict[str, Any]:
    """A project as `GET projects/{org}/{project}/` and an issue's `project` show it."""
    return {"id": sentry.project_id(slug), "slug": slug, "name": slug, "platform": sentry.platform}


def issue_json(sentry: SentryStandIn, issue: SentryIssue, stats_period: str) -> dict[str, Any]:
    """An issue as the issue endpoints answer it, with `stats` over `stats_period` (24h or 14d) unless empty."""
    body: dict[str, Any] = {
        "id": issue.id,
        "shortId": issue.short_id,
        "title": issue.title,
        "culprit": issue.culprit,
        "permalink": f"{sentry.url}/organizations/{sentry.org}/issues/{issue.id}/",
        "logger": None,
        "level": issue.level,
        "status": issue.status,
        "statusDetails": {},
        "substatus": "ongoing" if issue.status == "unresolved" else None,
        "isPublic": False,
        "platform": sentry.platform,
        "project": project_json(sentry, issue.project),
        "type": "error",
        "metadata": {
            "type": issue.exc_type,
            "value": issue.value,
            "filename": issue.filename,
            "function": issue.function,
        },
        "numComments": 0,
        "assignedTo": None,
        "isBookmarked": False,
        "isSubscribed": False,
        "hasSeen": False,
        "annotations": [],
        "count": str(issue.count),
        "userCount": issue.user_count,
        "firstSeen": iso(issue.first_seen),
        "lastSeen": iso(issue.last_seen),
    }
    if stats_period:
        step = 3600 if stats_period == "24h" else 86400
        n = 24 if stats_period == "24h" else 14
        now = int(sentry.clock().timestamp() // step) * step
        edges = [now - step * (n - 1 - i) for i in range(n)]
        counts = dict.fromkeys(edges, 0)
        for event in issue.events:
            bucket = int(event.at.timestamp() // step) * step
            if bucket in counts:
                counts[bucket] += 1
        body["stats"] = {stats_period: [[t, counts[t]] for t in edges]}
    return body


def event_json(sentry: SentryStandIn, issue: SentryIssue, event: SentryEvent) -> dict[str, Any]:
    """An event as `events/latest/` answers it: tags, the exception entry with its frames, release, user."""
    return {
        "id": event.event_id,
        "eventID": event.event_id,
        "groupID": issue.id,
        "projectID": sentry.project_id(issue.project),
        "title": f"{event.exc_type}: {event.message}",
        "message": event.message,
        "type": "error",
        "platform": sentry.platform,
        "culprit": issue.culprit,
        "location": issue.filename,
        "dateCreated": iso(event.at),
        "dateReceived": iso(event.at),
        "tags": [{"key": k, "value": v} for k, v in sorted(event.tags.items())],
        "metadata": {
            "type": event.exc_type,
            "value": event.message,
            "filename": issue.filename,
            "function": issue.function,
        },
        "entries": [
            {
                "type": "exception",
                "data": {
                    "values": [
                        {
                            "type": event.exc_type,
                            "value": event.message,
                            "module": None,
                            "mechanism": {"type": "generic", "handled": False},
                            "stacktrace": {
                                "frames": event.frames,
                                "framesOmitted": None,
                                "registers": None,
                                "hasSystemFrames": any(not f["inApp"] for f in event.frames),
                            },
                            "rawStacktrace": None,
                        }
                    ],
                    "hasSystemFrames": any(not f["inApp"] for f in event.frames),
                    "excOmitted": None,
                },
            }
        ],
        "contexts": {},
        "context": {},
        "user": {"id": event.tags["user"]} if event.tags.get("user") else None,
        "sdk": {"name": "sentry.python", "version": "2.19.0"},
        "release": {"version": event.tags["release"]} if event.tags.get("release") else None,
        "environment": event.tags.get("environment"),
    }
