"""A drill's report: the artifact, the row in the drill history (and its trend), the summary in Slack.

Usage::

    publish(result, s, opts, log)
"""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext

from flows.drilling.monitor import DrillLog
from flows.drilling.options import DrillOptions
from flows.flow_run import artifact_key
from runbook.drill_history import open_history
from runbook.drills import DrillResult, DrillStatus, Scenario
from runbook.errors import RunbookError
from runbook.postmortem import (
    HistoryRow,
    drill_slack_text,
    history_rows,
    history_summary,
    render_drill_report,
)
from tasks import runtime
from tasks.slack import SlackNotConfigured, post_message

__all__ = ["publish", "publish_history", "send_to_slack"]


# --- publishing -------------------------------------------------------------------------------------------


def send_to_slack(channel: str, text: str, thread_ts: str | None = None) -> str | None:
    """Post `text` to Slack through the Slack task (tasks/slack.py); returns the message's ts.

    No token configured: None (the caller records the report as not posted). Slack failing after the
    task's bounded retries: `SlackFailed`.
    """
    try:
        return post_message(channel, text, thread_ts=thread_ts).ts
    except SlackNotConfigured:
        return None


def publish(result: DrillResult, s: Scenario, opts: DrillOptions, log: DrillLog) -> None:
    """The report as an artifact, the row in the history (and its trend), the summary in Slack."""
    in_flow = FlowRunContext.get() is not None
    url = runtime.settings().store.url
    with open_history(url) as history:
        history.record(HistoryRow.of(result), report=result.model_dump_json())
        rows = history.list(limit=200)
    if in_flow:
        create_markdown_artifact(
            key=artifact_key(f"drill-{s.key}"),
            markdown=render_drill_report(result, s),
            description=f"Drill {s.label}: {result.status.value}",
        )
        publish_history(rows)
    if not opts.post_to_slack or result.status == DrillStatus.REFUSED:
        return
    channel = runtime.settings().slack.incidents_channel
    try:
        ts = send_to_slack(channel, drill_slack_text(result, s))
    except RunbookError as exc:  # SlackFailed: the report exists as an artifact either way
        log.note("slack", f"drill report not delivered to {channel}: {type(exc).__name__}: {exc}")
        return
    log.note(
        "slack", f"drill report posted to {channel}" if ts else "Slack not configured: report not posted"
    )


def publish_history(rows: list[HistoryRow]) -> None:
    """The drill history (newest first, MTTR trend per scenario) and its summary as table artifacts."""
    create_table_artifact(key="drill-history", table=history_rows(rows), description="Drills: MTTR trend")
    create_table_artifact(key="drill-summary", table=history_summary(rows), description="Drills per scenario")
