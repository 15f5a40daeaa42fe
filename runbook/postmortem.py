"""The post-incident documents as markdown: the post-mortem of an incident and the report of a drill.

Usage::

    from runbook.postmortem import PostMortemRecord, render_postmortem, render_drill_report

    record = PostMortemRecord(incident=incident, alerts=alerts, actions=actions, runs=runs, logs=logs,
                              generated_at=now)
    markdown = render_postmortem(record)      # timeline, the six questions, the prevention items
    text = meeting_reminder(incident, due_at=record.meeting_due, handles=("@on-call", "@team-lead"))
    markdown = render_drill_report(result, scenario)   # timeline, figures vs targets, pass/fail, advice
    rows = history_rows(history)              # the drill trend as table-artifact rows

Guide: Post-Incident (After Service Recovered): Immediate Follow-up, Post-Mortem (Within 24 hours:
who attends, the six questions), Prevention & Monitoring (the five items, here action items with an
owner); Running Incident Drill ("Document drill results and improve procedures").

Pure: no Prefect, no I/O. flows/postmortem.py and flows/drills.py gather the facts and publish these.
The formats are held by golden tests (tests/flows/drills/golden/). The drill's report, Slack summary
and history rows are `runbook.drill_report` (re-exported here); the shared markdown formatting is
`runbook.report_format`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, Field

from runbook.drill_report import (
    HistoryRow,
    drill_slack_text,
    history_rows,
    history_summary,
    render_drill_report,
)
from runbook.models import ActionRecord, ActionStatus, Alert, Evidence, Incident
from runbook.report_format import cell, hms, human_td, short, stamp
from runbook.severity import LEVELS

__all__ = [
    "MEETING_WITHIN",
    "PREVENTION",
    "QUESTIONS",
    "ActionItem",
    "HistoryRow",
    "LogLine",
    "PostMortemRecord",
    "RunInfo",
    "TimelineLine",
    "action_items",
    "assemble_timeline",
    "drill_slack_text",
    "history_rows",
    "history_summary",
    "meeting_reminder",
    "render_drill_report",
    "render_postmortem",
]

MEETING_WITHIN = timedelta(hours=24)

# Guide: Post-Mortem (Within 24 hours) › Discuss.
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("What happened?", "Timeline"),
    ("Why did it happen?", "Root cause"),
    ("How did we respond?", "Actions taken"),
    ("What went well?", "Positive aspects"),
    ("What could improve?", "Learning points"),
    ("How do we prevent?", "Action items"),
)

# Guide: Prevention & Monitoring ("For each incident, implement:").
PREVENTION: tuple[tuple[str, str], ...] = (
    ("New alert rule", "to catch earlier"),
    ("Code change", "if software bug"),
    ("Documentation", "runbook update"),
    ("Process improvement", "if human error"),
    ("Test case", "to prevent regression"),
)

# Timeline kinds that are messages sent to people (Slack, PagerDuty, users) rather than steps.
_MESSAGE_KINDS = frozenset({"message", "slack", "pagerduty", "page", "status-update", "all-clear", "notify"})
# Timeline kinds in which a runbook states what it found: hints for the root cause, never the answer.
_FINDING_KINDS = frozenset({"assess", "decide", "diagnosis", "investigate", "triage"})


class RunInfo(BaseModel):
    """One Prefect flow run that worked on the incident."""

    id: str
    name: str
    flow_name: str
    state: str
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None
    parent_id: str | None = None


class LogLine(BaseModel):
    """One log line of those runs (the post-mortem keeps warnings and errors)."""

    at: AwareDatetime
    level: int
    flow_run_id: str | None = None
    message: str

    @property
    def level_name(self) -> str:
        return {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}.get(
            self.level, str(self.level)
        )


class PostMortemRecord(BaseModel):
    """Everything the record holds about one incident, gathered by flows/postmortem.py."""

    incident: Incident
    alerts: list[Alert] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    runs: list[RunInfo] = Field(default_factory=list)
    logs: list[LogLine] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    generated_at: AwareDatetime

    @property
    def meeting_due(self) -> datetime:
        """The post-mortem meeting is due within 24 hours of recovery (or of now, if not resolved)."""
        base = self.incident.resolved_at or self.incident.mitigated_at or self.generated_at
        return base + MEETING_WITHIN


@dataclass(frozen=True)
class TimelineLine:
    at: datetime
    source: str
    what: str


def assemble_timeline(record: PostMortemRecord) -> list[TimelineLine]:
    """One timeline from every source, in time order: alerts received, the store's entries, flow-run
    starts and ends, action claims and outcomes, warning and error logs. Ties keep that source order."""
    lines: list[tuple[datetime, int, TimelineLine]] = []

    def add(at: datetime | None, rank: int, source: str, what: str) -> None:
        if at is not None:
            lines.append((at, rank, TimelineLine(at, source, what)))

    for a in record.alerts:
        add(a.received_at, 0, f"alert:{a.source.value}", f"{a.status.value}: {a.name}: {a.summary}")
    for e in record.incident.timeline:
        add(e.at, 1, e.actor, f"{e.kind}: {e.message}")
    for r in record.runs:
        add(r.start_time, 2, "prefect", f"flow run {r.name} ({r.flow_name}) started")
        add(r.end_time, 2, "prefect", f"flow run {r.name} ({r.flow_name}) ended {r.state}")
    for log in record.logs:
        add(log.at, 3, "log", f"{log.level_name}: {log.message}")
    lines.sort(key=lambda item: (item[0], item[1]))
    return [line for _at, _rank, line in lines]


@dataclass(frozen=True)
class ActionItem:
    """One prevention item, an action item waiting for an owner."""

    item: str
    why: str
    suggestion: str
    owner: str = ""


def action_items(record: PostMortemRecord) -> list[ActionItem]:
    """The five prevention items, each with a suggestion from the record where it has one."""
    inc = record.incident
    first_alert = min(record.alerts, key=lambda a: a.received_at, default=None)
    detected = (
        f"first alert {first_alert.name!r} from {first_alert.source.value} "
        f"at {hms(first_alert.received_at)}, "
        f"{human_td(first_alert.received_at - inc.started_at)} after the start"
        if first_alert
        else "no alert recorded: the incident was opened by hand"
    )
    rolled_back = [a for a in record.actions if a.action == "rollback" and a.status == ActionStatus.SUCCEEDED]
    code = (
        f"rolled back ({rolled_back[0].detail or rolled_back[0].target}): fix the bug in the rolled-back code"
        if rolled_back
        else "decide whether a software bug caused it"
    )
    failed = [a for a in record.actions if a.status in (ActionStatus.FAILED, ActionStatus.REFUSED)]
    docs = (
        f"runbook {inc.runbook}: " + "; ".join(f"{a.action} {a.status.value}" for a in failed)
        if failed
        else f"runbook {inc.runbook or '-'}: record what worked"
    )
    return [
        ActionItem("New alert rule", "to catch earlier", detected),
        ActionItem("Code change", "if software bug", code),
        ActionItem("Documentation", "runbook update", docs),
        ActionItem("Process improvement", "if human error", "decide whether a human step failed"),
        ActionItem(
            "Test case",
            "to prevent regression",
            f"reproduce it as a drill or a test of {inc.runbook or 'the flow'}",
        ),
    ]


def _status_at(inc: Incident) -> list[tuple[str, datetime | None]]:
    return [
        ("started", inc.started_at),
        ("acknowledged", inc.acknowledged_at),
        ("mitigated", inc.mitigated_at),
        ("resolved", inc.resolved_at),
    ]


def render_postmortem(record: PostMortemRecord) -> str:
    """The post-mortem document: header, timeline, the six questions, prevention items, evidence."""
    inc = record.incident
    level = LEVELS[inc.severity]
    end = inc.resolved_at or inc.mitigated_at
    duration = human_td(end - inc.started_at) if end else "ongoing"
    out = [
        f"# Post-mortem: {inc.title}",
        "",
        f"**Incident** `{inc.id}` · **Severity** {level.label} (rule `{inc.severity_rule}`) · "
        f"**Service** {inc.service} · **Status** {inc.status.value} · **Duration** {duration}",
        "",
        f"Started {stamp(inc.started_at)} · Acknowledged {stamp(inc.acknowledged_at)} · "
        f"Mitigated {stamp(inc.mitigated_at)} · Resolved {stamp(inc.resolved_at)}",
        "",
        f"**Post-mortem meeting** by {stamp(record.meeting_due)} (within 24 hours) with: on-call engineer "
        "(responder), team lead (escalation point), subject matter expert (if applicable), DevOps (if "
        "infrastructure issue).",
        "",
        "## Immediate follow-up",
        "",
        "- [x] Document timeline in #incidents (below)",
        "- [x] Collect error logs and metrics (below)",
        "- [ ] Take screenshots of dashboards",
        "- [ ] Record what worked / what didn't (questions 4 and 5)",
        "- [x] List action items for prevention (question 6)",
        "",
        "## Timeline",
        "",
        "| time (UTC) | source | what |",
        "|---|---|---|",
    ]
    out += [
        f"| {stamp(line.at)} | {cell(line.source)} | {cell(line.what)} |"
        for line in assemble_timeline(record)
    ]

    # 1. What happened? (Timeline)
    out += ["", "## 1. What happened? (Timeline)", ""]
    alerts = (
        f"{len(record.alerts)} alert(s) received" if record.alerts else "no alert received (opened by hand)"
    )
    out.append(
        f"{level.label} incident on {inc.service}: {inc.title}. {alerts}; "
        + ", ".join(f"{name} {hms(at)}" for name, at in _status_at(inc) if at is not None)
        + f"; duration {duration}. The timeline above is the record."
    )

    # 2. Why did it happen? (Root cause)
    out += ["", "## 2. Why did it happen? (Root cause)", ""]
    findings = [e for e in inc.timeline if e.kind in _FINDING_KINDS]
    if findings:
        out.append("What the automation found (evidence, not yet a root cause):")
        out.append("")
        out += [f"- {hms(e.at)} {e.actor}: {e.message}" for e in findings]
        out.append("")
    out.append("> _Prompt: the root cause, in a sentence, and the evidence for it. (People answer this.)_")

    # 3. How did we respond? (Actions taken)
    out += ["", "## 3. How did we respond? (Actions taken)", ""]
    if record.actions:
        out += [
            "| claimed (UTC) | action | target | outcome | finished | detail |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {hms(a.claimed_at)} | {a.action} | {cell(a.target)} | {a.status.value} | "
            f"{hms(a.finished_at)} | {cell(a.detail or '')} |"
            for a in record.actions
        ]
    else:
        out.append("No action was taken on the systems.")
    outcomes = [e for e in inc.timeline if e.kind == "outcome"]
    if outcomes:
        out += ["", *[f"- {e.actor} ended: {e.message}" for e in outcomes]]
    sent = [e for e in inc.timeline if e.kind in _MESSAGE_KINDS]
    out += ["", f"Messages sent: {len(sent)}."]
    out += [f"- {hms(e.at)} {e.actor}: {e.message}" for e in sent]

    # 4. What went well? / 5. What could improve?
    good, bad = _facts(record)
    out += ["", "## 4. What went well? (Positive aspects)", ""]
    out += [f"- {f}" for f in good] or []
    if good:
        out.append("")
    out.append("> _Prompt: what helped (people, tools, the runbook, luck)?_")
    out += ["", "## 5. What could improve? (Learning points)", ""]
    out += [f"- {f}" for f in bad]
    if bad:
        out.append("")
    out.append("> _Prompt: what slowed us down or surprised us?_")

    # 6. How do we prevent? (Action items)
    out += ["", "## 6. How do we prevent? (Action items)", ""]
    out += ["| | item | from the record | owner |", "|---|---|---|---|"]
    out += [
        f"| [ ] | {i.item} ({i.why}) | {cell(i.suggestion)} | {i.owner or '_assign_'} |"
        for i in action_items(record)
    ]

    # Error logs and metric snapshots
    out += ["", "## Flow runs", ""]
    if record.runs:
        out += ["| run | flow | state | started | ended |", "|---|---|---|---|---|"]
        out += [
            f"| {r.name} | {r.flow_name} | {r.state} | {hms(r.start_time)} | {hms(r.end_time)} |"
            for r in record.runs
        ]
    else:
        out.append("None recorded.")
    out += ["", "## Error logs", ""]
    if record.logs:
        out += ["```", *[f"{stamp(log.at)} {log.level_name:<8} {log.message}" for log in record.logs], "```"]
    else:
        out.append("No warning or error was logged.")
    out += ["", "## Metrics and evidence", ""]
    snapshots = [(e, e.evidence) for e in inc.timeline if e.evidence]
    for item in record.evidence:  # four backticks: the content may hold fenced blocks of its own
        out += [f"### {item.title} ({item.kind})", "", "````", item.content.rstrip() or "(empty)", "````", ""]
    for e, data in snapshots:
        out.append(
            f"- {hms(e.at)} {e.kind}: " + ", ".join(f"{k}={short(v)}" for k, v in sorted(data.items()))
        )
    if not record.evidence and not snapshots:
        out.append("None collected.")
    out += ["", f"_Generated {stamp(record.generated_at)} from the incident store and the Prefect API._"]
    return "\n".join(out).rstrip("\n") + "\n"


def _facts(record: PostMortemRecord) -> tuple[list[str], list[str]]:
    """Measured facts for questions 4 and 5: the response times against the level's target."""
    inc = record.incident
    target = LEVELS[inc.severity].response_time
    good: list[str] = []
    bad: list[str] = []
    for name, at in (("acknowledged", inc.acknowledged_at), ("mitigated", inc.mitigated_at)):
        if at is None:
            bad.append(f"never {name} in the record")
            continue
        took = at - inc.started_at
        line = f"{name} {human_td(took)} after the start (target < {human_td(target)})"
        (good if took <= target else bad).append(line)
    for a in record.actions:
        if a.status == ActionStatus.SUCCEEDED:
            good.append(f"{a.action} on {a.target} succeeded")
        elif a.status in (ActionStatus.FAILED, ActionStatus.REFUSED):
            bad.append(f"{a.action} on {a.target} {a.status.value}: {a.detail or ''}".rstrip(": "))
    for e in inc.timeline:
        if e.kind in ("undelivered", "escalate", "escalated") or "undelivered" in e.message:
            bad.append(f"{e.kind}: {e.message}")
    if record.logs:
        bad.append(f"{len(record.logs)} warning/error log line(s) during the response")
    return good, bad


def meeting_reminder(incident: Incident, due_at: datetime, handles: Sequence[str] = ()) -> str:
    """The Slack reminder posted in the incident thread: the post-mortem meeting within 24 hours."""
    who = " ".join(handles) + " " if handles else ""
    return (
        f"{who}:memo: Post-mortem for *{incident.title}* ({incident.severity}) due by "
        f"{due_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC (within 24 hours). "
        "Attend: on-call engineer, team lead, subject matter expert (if applicable), "
        "DevOps (if infrastructure issue). "
        "Discuss: what happened, why, how we responded, what went well, what could improve, how we prevent."
    )
