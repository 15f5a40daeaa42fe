"""Markdown formatting shared by the post-incident documents (`runbook.postmortem` and
`runbook.drill_report`): a table cell, a shortened value, UTC timestamps, durations. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from runbook.drills import human_s


def cell(text: str) -> str:
    """`text` safe inside a markdown table cell (pipes escaped, one line)."""
    return text.replace("|", "\\|").replace("\n", " ")


def short(value: Any) -> str:
    """`value` as text, cut to 60 characters."""
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def stamp(at: datetime | None) -> str:
    """`at` in UTC as `YYYY-MM-DD HH:MM:SS`, "-" for none."""
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if at is not None else "-"


def hms(at: datetime | None) -> str:
    """`at` in UTC as `HH:MM:SS`, "-" for none."""
    return f"{at.astimezone(UTC):%H:%M:%S}" if at is not None else "-"


def human_td(t: timedelta) -> str:
    """A duration as `human_s` writes it."""
    return human_s(t.total_seconds())
