"""What the response says in Slack, rendered exactly in the guide's formats.

Usage::

    from runbook.messages import ActionLine, AllClear, StatusUpdate, render_all_clear, render_status_update

    text = render_status_update(StatusUpdate(
        severity=Severity.P1, title="High Error Rate (6%)",
        started_at=t0, updated_at=t0 + timedelta(minutes=2), next_update_at=t0 + timedelta(minutes=7),
        impact="All users affected",
        current_status=["Investigating root cause", "Error messages: Database timeout"],
        actions=[ActionLine("Identified error pattern", done=True), ActionLine("Checking slow queries")],
    ))
    render_all_clear(AllClear(title="High Error Rate Incident", started_at=t0, resolved_at=t1,
                              root_cause="...", impact="...", resolution=[...], follow_up=[...]))
    parse_message(text)          # header, "Key: value" fields and "Section:" lists, for tests and readers

Guide: Communication During Incident › Status Updates (Every 5-10 minutes) and › All-Clear Message.
Both examples of the guide render from data to the guide's text, character for character
(tests/flows/respond/test_messages.py).

Decisions where the guide shows only one example:

- Times are `HH:MM UTC` (24-hour clock, UTC), as in the guide. "Time" is when the incident started,
  "Last Updated" when this update was written, "Next Update" when the next one is due.
- "Duration" counts the whole minutes between the displayed times (both truncated to the minute), so
  a reader checking `Time` against `Last Updated` finds the same number: 14:08 → 14:10 is
  "2 minutes". One minute is "1 minute"; under one minute "< 1 minute"; from 60 minutes on,
  "1 hour 5 minutes", "2 hours".
- The header's colour follows the level: 🔴 P1 (the guide's example), 🟠 P2, 🟡 P3, 🔵 P4; the label is
  the level's own label in capitals ("P1 - CRITICAL").
- Actions done are "✓ ...", actions in progress "→ ..." (done first, as in the example).
- The all-clear's duration shows the start and end times: "8 minutes (14:08 - 14:16 UTC)"; it ends with
  "Status: STABLE ✅".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from runbook.severity import LEVELS, Severity

__all__ = [
    "DONE_MARK",
    "LEVEL_EMOJI",
    "PROGRESS_MARK",
    "ActionLine",
    "AllClear",
    "ParsedMessage",
    "StatusUpdate",
    "clock",
    "format_duration",
    "header_label",
    "human_duration",
    "parse_message",
    "render_all_clear",
    "render_status_update",
    "whole_minutes",
]

LEVEL_EMOJI: dict[Severity, str] = {
    Severity.P1: "🔴",
    Severity.P2: "🟠",
    Severity.P3: "🟡",
    Severity.P4: "🔵",
}
DONE_MARK = "✓"
PROGRESS_MARK = "→"


def clock(moment: datetime) -> str:
    """`14:08 UTC`: the guide's way of writing a time."""
    return f"{_utc(moment):%H:%M} UTC"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"time must be timezone-aware (got {moment!r})")
    return moment.astimezone(UTC)


def _minute(moment: datetime) -> datetime:
    return _utc(moment).replace(second=0, microsecond=0)


def whole_minutes(start: datetime, end: datetime) -> int:
    """Minutes between the two times as displayed (each truncated to the minute); never negative."""
    return max(0, int((_minute(end) - _minute(start)).total_seconds() // 60))


def format_duration(minutes: int) -> str:
    """`2 minutes`, `1 minute`, `< 1 minute`, `1 hour 5 minutes`, `2 hours`."""
    if minutes < 0:
        raise ValueError(f"a duration cannot be negative (got {minutes} minutes)")
    if minutes == 0:
        return "< 1 minute"
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    text = f"{hours} hour{'s' if hours != 1 else ''}"
    return text if rest == 0 else f"{text} {format_duration(rest)}"


def human_duration(delta: timedelta) -> str:
    """`5 min`, `1 h`, `0.5 s`: a deadline or an interval (scaled ones in tests and drills are seconds)."""
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes = seconds / 60
    return f"{minutes:g} min" if minutes < 60 else f"{minutes / 60:g} h"


def header_label(severity: Severity) -> str:
    """`🔴 [P1 - CRITICAL]`."""
    return f"{LEVEL_EMOJI[severity]} [{LEVELS[severity].label.upper()}]"


# --- Status Updates (Every 5-10 minutes) ------------------------------------------------------------------


@dataclass(frozen=True)
class ActionLine:
    """One line of "Actions Taken": done (✓) or in progress (→)."""

    text: str
    done: bool = False

    def render(self) -> str:
        return f"{DONE_MARK if self.done else PROGRESS_MARK} {self.text}"


class StatusUpdate(BaseModel):
    """The data of one status update (guide: Communication During Incident › Status Updates)."""

    model_config = ConfigDict(frozen=True)

    severity: Severity
    title: str = Field(min_length=1, description='"High Error Rate (6%)"')
    started_at: AwareDatetime = Field(description='"Time": when the incident started')
    updated_at: AwareDatetime = Field(description='"Last Updated"')
    next_update_at: AwareDatetime = Field(description='"Next Update"')
    impact: str = Field(min_length=1, description='"All users affected"')
    current_status: list[str] = Field(default_factory=list)
    actions: list[ActionLine] = Field(default_factory=list)

    @property
    def duration_minutes(self) -> int:
        return whole_minutes(self.started_at, self.updated_at)


def render_status_update(update: StatusUpdate) -> str:
    """The guide's status update, line for line."""
    lines = [
        f"{header_label(update.severity)} {update.title}",
        "",
        f"Time: {clock(update.started_at)}",
        f"Duration: {format_duration(update.duration_minutes)}",
        f"Impact: {update.impact}",
        "",
        "Current Status:",
        *[f"- {line}" for line in update.current_status or ["Investigating"]],
        "",
        "Actions Taken:",
        *([a.render() for a in _done_first(update.actions)] or [f"{PROGRESS_MARK} Assessing"]),
        "",
        f"Last Updated: {clock(update.updated_at)}",
        f"Next Update: {clock(update.next_update_at)}",
    ]
    return "\n".join(lines)


def _done_first(actions: list[ActionLine]) -> list[ActionLine]:
    return [a for a in actions if a.done] + [a for a in actions if not a.done]


# --- All-Clear Message ------------------------------------------------------------------------------------


class AllClear(BaseModel):
    """The data of the all-clear (guide: Communication During Incident › All-Clear Message)."""

    model_config = ConfigDict(frozen=True)

    title: str = Field(min_length=1, description='"High Error Rate Incident"')
    started_at: AwareDatetime
    resolved_at: AwareDatetime
    root_cause: str = Field(min_length=1)
    impact: str = Field(min_length=1)
    resolution: list[str] = Field(min_length=1)
    follow_up: list[str] = Field(default_factory=list)

    @property
    def duration_minutes(self) -> int:
        return whole_minutes(self.started_at, self.resolved_at)


def render_all_clear(message: AllClear) -> str:
    """The guide's all-clear, line for line."""
    start, end = f"{_utc(message.started_at):%H:%M}", clock(message.resolved_at)
    lines = [
        f"✅ [RESOLVED] {message.title}",
        "",
        f"Duration: {format_duration(message.duration_minutes)} ({start} - {end})",
        f"Root Cause: {message.root_cause}",
        f"Impact: {message.impact}",
        "",
        "Resolution:",
        *[f"- {line}" for line in message.resolution],
        "",
        "Follow-up:",
        *[f"- {line}" for line in message.follow_up or ["Post-mortem within 24 hours"]],
        "",
        "Status: STABLE ✅",
    ]
    return "\n".join(lines)


# --- reading a message back -------------------------------------------------------------------------------


@dataclass
class ParsedMessage:
    """A message of either format, split into its parts (see `parse_message`)."""

    header: str
    fields: dict[str, str] = field(default_factory=dict)
    sections: dict[str, list[str]] = field(default_factory=dict)


_FIELD = re.compile(r"^([A-Z][A-Za-z -]*?): (.+)$")
_SECTION = re.compile(r"^([A-Z][A-Za-z -]*):$")


def parse_message(text: str) -> ParsedMessage:
    """Split a status update or all-clear: the header line, `Key: value` fields, `Section:` lists.

    List items keep their marker (`- `, `✓ `, `→ `). Raises `ValueError` naming the line that fits
    neither shape, so a test comparing with the guide says where they differ.
    """
    lines = text.split("\n")
    if not lines or not lines[0].strip():
        raise ValueError("message: the first line must be the header")
    parsed = ParsedMessage(header=lines[0])
    section: str | None = None
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            section = None
            continue
        if section is not None and line[:2] in ("- ", f"{DONE_MARK} ", f"{PROGRESS_MARK} "):
            parsed.sections[section].append(line)
            continue
        match = _SECTION.match(line)
        if match:
            section = match.group(1)
            parsed.sections[section] = []
            continue
        match = _FIELD.match(line)
        if match:
            parsed.fields[match.group(1)] = match.group(2)
            continue
        raise ValueError(f"message line {number}: neither 'Key: value', 'Section:' nor a list item: {line!r}")
    return parsed
