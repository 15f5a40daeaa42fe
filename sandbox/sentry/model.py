"""What the Sentry stand-in stores: issues, their events, traffic counts; frames and the issue search.

An issue groups the events of one fingerprint (exception type + culprit, the innermost in-app frame);
`issue_filter` understands the search terms the stand-in serves (`is:`, `level:`, free text).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.httpserver import HttpError

__all__ = [
    "LEVELS",
    "Frame",
    "SentryEvent",
    "SentryIssue",
    "Traffic",
    "base36",
    "issue_filter",
    "parse_frame",
]

Frame = tuple[str, str, int] | Mapping[str, Any]
"""A stack frame: `(filename, function, lineno)` or a dict with filename, function, lineNo/lineno, module."""

LEVELS = ("fatal", "error", "warning", "info", "debug")


@dataclass
class SentryEvent:
    """One captured occurrence."""

    event_id: str
    issue_id: str
    message: str
    exc_type: str
    frames: list[dict[str, Any]]
    level: str
    tags: dict[str, str]
    at: datetime


@dataclass
class SentryIssue:
    """A group of events sharing one fingerprint (exception type + culprit)."""

    id: str
    short_id: str
    project: str
    fingerprint: tuple[str, str]
    title: str
    culprit: str
    level: str
    exc_type: str
    value: str
    filename: str
    function: str
    first_seen: datetime
    last_seen: datetime
    status: str = "unresolved"
    events: list[SentryEvent] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.events)

    @property
    def user_count(self) -> int:
        return len({e.tags["user"] for e in self.events if e.tags.get("user")})


@dataclass
class Traffic:
    """Transactions counted at one instant, and how many of them produced an error event."""

    at: datetime
    transactions: int
    errors: int


def parse_frame(frame: Frame) -> dict[str, Any]:
    """A frame in the shape of an event's `stacktrace.frames[]` (ValueError without filename or function)."""
    if isinstance(frame, Mapping):
        filename = frame.get("filename")
        function = frame.get("function")
        line = frame.get("lineNo", frame.get("lineno"))
        module = frame.get("module")
        in_app = bool(frame.get("inApp", frame.get("in_app", True)))
    else:
        filename, function, line = frame
        module, in_app = None, True
    if not filename or not function:
        raise ValueError(f"a frame needs a filename and a function: {frame!r}")
    return {
        "filename": str(filename),
        "absPath": str(filename),
        "module": module,
        "function": str(function),
        "lineNo": int(line) if line is not None else None,
        "colNo": None,
        "inApp": in_app,
        "context": [],
        "vars": None,
    }


def issue_filter(query: str) -> Callable[[SentryIssue], bool]:
    """The predicate for a search: `is:STATUS`, `level:NAME`, free words in the title (400 on a bad `is:`)."""
    statuses: set[str] = set()
    levels: set[str] = set()
    words: list[str] = []
    for token in query.split():
        key, sep, value = token.partition(":")
        if sep and key == "is":
            if value not in ("unresolved", "resolved", "ignored"):
                raise HttpError(400, {"detail": f'Invalid value for "is" search, got: {value}'})
            statuses.add(value)
        elif sep and key == "level":
            levels.add(value)
        else:
            words.append(token.lower())

    def match(issue: SentryIssue) -> bool:
        return (
            (not statuses or issue.status in statuses)
            and (not levels or issue.level in levels)
            and all(w in issue.title.lower() for w in words)
        )

    return match


def base36(n: int) -> str:
    """`n` in base 36 (the suffix of an issue's shortId)."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def iso(at: datetime, timespec: str = "microseconds") -> str:
    """`at` in UTC as Sentry writes times (`2024-01-01T00:00:00.000000Z`)."""
    return at.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
