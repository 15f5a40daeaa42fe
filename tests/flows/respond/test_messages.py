"""Golden tests: the guide's status update and all-clear, rendered from data, equal the guide's text.

The two examples are kept verbatim under tests/flows/respond/golden/ (copied from the guide's
"Communication During Incident"); the copies are checked against the
guide in the repository (docs/incident-response-guide.md) too, so neither can drift.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runbook.messages import (
    ActionLine,
    AllClear,
    StatusUpdate,
    format_duration,
    parse_message,
    render_all_clear,
    render_status_update,
)
from runbook.severity import Severity

GOLDEN = Path(__file__).parent / "golden"
GUIDE = Path(__file__).resolve().parents[3] / "docs" / "incident-response-guide.md"  # a copy of the guide

T0 = datetime(2025, 11, 14, 14, 8, 12, tzinfo=UTC)


def golden(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8").rstrip("\n")


def guide_example() -> StatusUpdate:
    return StatusUpdate(
        severity=Severity.P1,
        title="High Error Rate (6%)",
        started_at=T0,
        updated_at=T0.replace(minute=10, second=41),
        next_update_at=T0.replace(minute=15, second=41),
        impact="All users affected",
        current_status=[
            "Investigating root cause",
            "Error messages: Database timeout",
            "Affected: Journal creation endpoint",
            "Estimated fix: 5 minutes",
        ],
        actions=[
            ActionLine("Checking slow queries"),
            ActionLine("Identified error pattern", done=True),
            ActionLine("Escalated to database team", done=True),
            ActionLine("Considering rollback"),
        ],
    )


def guide_all_clear() -> AllClear:
    return AllClear(
        title="High Error Rate Incident",
        started_at=T0,
        resolved_at=T0.replace(minute=16, second=3),
        root_cause="Slow database query (migration issue)",
        impact="150 requests failed (0.3% of total)",
        resolution=[
            "Reverted problematic database migration",
            "All services back to normal",
            "Error rate: 0.05%",
            "P95 response time: 850ms",
        ],
        follow_up=[
            "Database team reviewing migration",
            "Post-mortem scheduled for 10:00 UTC tomorrow",
            "Monitoring enhanced for database performance",
        ],
    )


@pytest.mark.parametrize(
    ("name", "rendered"),
    [
        ("status_update.txt", lambda: render_status_update(guide_example())),
        ("all_clear.txt", lambda: render_all_clear(guide_all_clear())),
    ],
)
def test_rendered_equals_the_guide_field_by_field_and_as_a_whole(name: str, rendered) -> None:
    text, expected = rendered(), golden(name)
    got, want = parse_message(text), parse_message(expected)
    assert got.header == want.header
    assert list(got.fields) == list(want.fields)
    for key, value in want.fields.items():
        assert got.fields[key] == value, key
    assert list(got.sections) == list(want.sections)
    for key, items in want.sections.items():
        assert got.sections[key] == items, key
    assert text == expected


def test_the_golden_copies_are_the_guides_own_text() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    for name in ("status_update.txt", "all_clear.txt"):
        assert f"```\n{golden(name)}\n```" in guide, name


def test_the_guides_fields_are_all_there() -> None:
    update = parse_message(golden("status_update.txt"))
    assert list(update.fields) == ["Time", "Duration", "Impact", "Last Updated", "Next Update"]
    assert list(update.sections) == ["Current Status", "Actions Taken"]
    clear = parse_message(golden("all_clear.txt"))
    assert list(clear.fields) == ["Duration", "Root Cause", "Impact", "Status"]
    assert clear.fields["Status"] == "STABLE ✅"
    assert list(clear.sections) == ["Resolution", "Follow-up"]


@pytest.mark.parametrize(
    ("severity", "header"),
    [
        (Severity.P1, "🔴 [P1 - CRITICAL] X"),
        (Severity.P2, "🟠 [P2 - HIGH] X"),
        (Severity.P3, "🟡 [P3 - MEDIUM] X"),
        (Severity.P4, "🔵 [P4 - LOW] X"),
    ],
)
def test_the_header_names_the_level(severity: Severity, header: str) -> None:
    update = guide_example().model_copy(update={"severity": severity, "title": "X"})
    assert render_status_update(update).split("\n")[0] == header


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(0, "< 1 minute"), (1, "1 minute"), (2, "2 minutes"), (59, "59 minutes"), (60, "1 hour"),
     (65, "1 hour 5 minutes"), (121, "2 hours 1 minute")],
)  # fmt: skip
def test_durations(minutes: int, text: str) -> None:
    assert format_duration(minutes) == text


def test_duration_counts_displayed_minutes_and_times_are_utc() -> None:
    paris = T0.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    update = guide_example().model_copy(
        update={"started_at": paris, "updated_at": T0.replace(minute=9, second=0)}
    )
    fields = parse_message(render_status_update(update)).fields
    assert fields["Time"] == "14:08 UTC"  # 15:08 in Paris, written in UTC
    assert fields["Duration"] == "1 minute"  # 14:08:12 → 14:09:00 shows as one minute


def test_an_update_without_actions_says_what_is_in_progress() -> None:
    update = guide_example().model_copy(update={"actions": [], "current_status": []})
    parsed = parse_message(render_status_update(update))
    assert parsed.sections == {"Current Status": ["- Investigating"], "Actions Taken": ["→ Assessing"]}


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_all_clear(
            guide_all_clear().model_construct(
                **{**guide_all_clear().__dict__, "started_at": datetime(2025, 1, 1, 14, 8)}
            )
        )


def test_all_clear_over_an_hour_and_across_midnight() -> None:
    start = datetime(2025, 11, 14, 23, 50, tzinfo=UTC)
    text = render_all_clear(
        guide_all_clear().model_copy(
            update={"started_at": start, "resolved_at": start + timedelta(minutes=75)}
        )
    )
    assert parse_message(text).fields["Duration"] == "1 hour 15 minutes (23:50 - 01:05 UTC)"


def test_parse_names_the_line_that_fits_no_shape() -> None:
    with pytest.raises(ValueError, match="line 3"):
        parse_message("header\n\nnot a field")
