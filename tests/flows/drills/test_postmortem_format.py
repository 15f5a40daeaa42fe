"""runbook/postmortem.py: the post-mortem and the drill report hold their format (golden files).

Regenerate after an intended change: `UPDATE_GOLDEN=1 pytest tests/flows/drills/test_postmortem_format.py`,
then read the diff.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runbook.drills import DrillResult, DrillStatus, DrillTimes, improvements, judge, scenario
from runbook.models import (
    ActionRecord,
    ActionStatus,
    Alert,
    AlertSource,
    Evidence,
    Incident,
    IncidentStatus,
    Signals,
    TimelineEntry,
)
from runbook.postmortem import (
    PREVENTION,
    QUESTIONS,
    HistoryRow,
    LogLine,
    PostMortemRecord,
    RunInfo,
    assemble_timeline,
    drill_slack_text,
    history_rows,
    history_summary,
    meeting_reminder,
    render_drill_report,
    render_postmortem,
)
from runbook.severity import Severity

GOLDEN = Path(__file__).parent / "golden"
T0 = datetime(2026, 11, 26, 14, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture
def record() -> PostMortemRecord:
    incident = Incident(
        id="inc0001",
        dedupe_key="ServiceDown:emotionscare",
        title="emotionscare answers 500 after a deploy",
        severity=Severity.P1,
        severity_rule="p1.service_unavailable",
        status=IncidentStatus.RESOLVED,
        runbook="service-down",
        started_at=at(0),
        acknowledged_at=at(40),
        mitigated_at=at(150),
        resolved_at=at(480),
        slack_thread_ts="1700000000.000100",
        timeline=[
            TimelineEntry(at=at(2), actor="alert:alertmanager", kind="opened", message="P1 incident opened"),
            TimelineEntry(at=at(40), actor="person:alice", kind="status", message="triggered → acknowledged"),
            TimelineEntry(at=at(45), actor="respond", kind="message", message="thread opened in #incidents"),
            TimelineEntry(
                at=at(60),
                actor="runbook:service-down",
                kind="assess",
                message="Step 1: application: /api/health 500",
                evidence={"health": 200, "api_health": 500},
            ),
            TimelineEntry(
                at=at(70),
                actor="runbook:service-down",
                kind="decide",
                message="Step 3: deployed 2 min ago → ROLLBACK",
            ),
            TimelineEntry(
                at=at(150), actor="runbook:service-down", kind="outcome", message="rolled_back: health ok"
            ),
            TimelineEntry(at=at(480), actor="respond", kind="all-clear", message="all-clear posted"),
        ],
    )
    return PostMortemRecord(
        incident=incident,
        alerts=[
            Alert(
                id="a1",
                source=AlertSource.ALERTMANAGER,
                fingerprint="fp",
                name="ServiceDown",
                annotations={"summary": "emotionscare 500s"},
                signals=Signals(server_errors_5xx=True),
                received_at=at(1),
            )
        ],
        actions=[
            ActionRecord(
                key="inc0001:rollback:prod/deployment/emotionscare",
                incident_id="inc0001",
                action="rollback",
                target="prod/deployment/emotionscare",
                status=ActionStatus.SUCCEEDED,
                claimed_at=at(75),
                finished_at=at(80),
                detail="kubectl rollout undo deployment/emotionscare: revision 2 → 1",
            )
        ],
        runs=[
            RunInfo(
                id="r1",
                name="brave-fox",
                flow_name="respond",
                state="Completed",
                start_time=at(3),
                end_time=at(490),
            ),
            RunInfo(
                id="r2",
                name="calm-owl",
                flow_name="service-down",
                state="Completed",
                start_time=at(50),
                end_time=at(151),
                parent_id="r1",
            ),
        ],
        logs=[LogLine(at=at(61), level=40, flow_run_id="r2", message="/api/health answered 500")],
        evidence=[
            Evidence(kind="health", title="health after rollback", content="/health 200\n/api/health 200")
        ],
        generated_at=at(600),
    )


def test_postmortem_golden(record: PostMortemRecord) -> None:
    check_golden("postmortem.md", render_postmortem(record))


def test_postmortem_has_the_six_questions_and_five_prevention_items(record: PostMortemRecord) -> None:
    text = render_postmortem(record)
    positions = [text.index(f"## {n}. {q} ({hint})") for n, (q, hint) in enumerate(QUESTIONS, 1)]
    assert positions == sorted(positions)
    for item, why in PREVENTION:
        assert f"| [ ] | {item} ({why}) |" in text
    assert text.count("_assign_") == 5  # every item has an owner field, empty until the meeting
    # people's questions stay prompts; the record's answers are filled in
    assert "> _Prompt: the root cause" in text
    assert "| 00:01:15 | rollback | prod/deployment/emotionscare | succeeded | 00:01:20 |" not in text
    assert "| 14:09:15 | rollback | prod/deployment/emotionscare | succeeded | 14:09:20 |" in text


def test_timeline_merges_every_source_in_time_order(record: PostMortemRecord) -> None:
    lines = assemble_timeline(record)
    assert [line.at for line in lines] == sorted(line.at for line in lines)
    sources = [line.source for line in lines]
    assert sources[:3] == [
        "alert:alertmanager",
        "alert:alertmanager",
        "prefect",
    ]  # alert, opened, respond run
    assert "log" in sources and sources.count("prefect") == 4


def test_meeting_reminder_is_due_within_24_hours_of_recovery(record: PostMortemRecord) -> None:
    assert record.meeting_due == at(480) + timedelta(hours=24)
    text = meeting_reminder(record.incident, record.meeting_due, ("@on-call", "@team-lead"))
    assert text.startswith(
        "@on-call @team-lead :memo: Post-mortem for *emotionscare answers 500 after a deploy* (P1)"
    )
    assert "due by 2026-11-27 14:16 UTC (within 24 hours)" in text


def _drill(status: DrillStatus = DrillStatus.PASSED) -> DrillResult:
    s = scenario("high-error-rate")
    times = DrillTimes(
        injected_at=at(0),
        detected_at=at(3.2),
        alerted_at=at(3.3),
        acknowledged_at=at(4.0),
        acknowledged_by="runbook:service-down took the incident",
        mitigated_at=at(9.5),
        mitigated_by="rollback succeeded",
        recovered_at=at(12.0),
        cleared_at=at(12.5),
    )
    result = DrillResult(
        drill_id="drill0001",
        scenario=s.key,
        target="sandbox",
        environment="sandbox",
        via="runbook",
        status=status,
        started_at=at(-1),
        finished_at=at(13),
        times=times,
        steps=judge(s, times),
        incident_id="inc0002",
        runbook="service-down",
        runbook_outcome="rolled_back",
        fault_cleared=True,
        timeline=[
            TimelineEntry(at=at(0), actor="drill", kind="inject", message="fault bad-deploy injected"),
            TimelineEntry(at=at(3.2), actor="drill:monitor", kind="detect", message="/api/health 500"),
            TimelineEntry(at=at(12.5), actor="drill", kind="clear", message="fault cleared"),
        ],
    )
    result.improvements = improvements(s, result)
    return result


def test_drill_report_golden() -> None:
    check_golden("drill_report.md", render_drill_report(_drill(), scenario("high-error-rate")))


def test_refused_drill_report_says_nothing_was_touched() -> None:
    result = DrillResult(
        drill_id="d",
        scenario="database-failure",
        target="prod",
        environment="production",
        via="runbook",
        status=DrillStatus.REFUSED,
        reason="target 'prod' is marked production",
        started_at=at(0),
    )
    text = render_drill_report(result, scenario("database-failure"))
    assert "⛔ REFUSED" in text and "Nothing was injected and the target was not contacted." in text
    assert "## Figures" not in text
    assert drill_slack_text(result, scenario("database-failure")).endswith(
        "target 'prod' is marked production"
    )


def test_drill_slack_text_carries_the_figures() -> None:
    text = drill_slack_text(_drill(), scenario("high-error-rate"), link="http://ui/artifacts/1")
    assert text.splitlines() == [
        ":white_check_mark: *Drill Scenario 2: High Error Rate*: passed on sandbox",
        "detect 3.2 s · acknowledge 0.7 s · mitigate 6.2 s · recover 8.7 s · MTTR 12.0 s",
        "Improve: Every step within its target: keep the runbook as it is; next time, try a harder variant.",
        "Report: http://ui/artifacts/1",
    ]


def test_history_rows_show_the_mttr_trend_per_scenario() -> None:
    def row(i: int, scenario_key: str, mttr: float | None, status: str = "passed") -> HistoryRow:
        return HistoryRow(
            drill_id=f"d{i}",
            scenario=scenario_key,
            target="sandbox",
            environment="sandbox",
            via="runbook",
            status=status,
            started_at=at(i * 86400 * 30),
            mttr_s=mttr,
        )

    history = [
        row(0, "a", 60),
        row(1, "b", 30),
        row(2, "a", 45),
        row(3, "a", None, "failed"),
        row(4, "a", 50),
    ]
    rows = history_rows(history)
    assert [(r["scenario"], r["MTTR"], r["MTTR trend"]) for r in rows] == [
        ("a", "50.0 s", "▲ 5.0 s"),
        ("a", "-", "-"),
        ("a", "45.0 s", "▼ 15.0 s"),
        ("b", "30.0 s", "first"),
        ("a", "1.0 min", "first"),
    ]
    summary = history_summary(history)
    assert summary[0] == {
        "scenario": "a",
        "drills": 4,
        "passed": 3,
        "last MTTR": "50.0 s",
        "mean MTTR": "51.7 s",
        "last run": f"{at(4 * 86400 * 30):%Y-%m-%d}",
    }
