"""Guide: Post-Incident (After Service Recovered): the record, the post-mortem document, the meeting reminder.

Usage::

    postmortem(incident_id="3f2a...")          # started when an incident is resolved (or by hand)
    # → var/postmortems/2026-11-26-3f2a....md, the same as an artifact, and a reminder in the thread

Immediate Follow-up, done here: the timeline documented (the store's entries, the flow runs' states,
the alerts received, the messages sent, merged in time order), error logs and metric snapshots
collected (warning and error logs of the incident's flow runs from the Prefect API; the runs'
artifacts with their evidence; the timeline's evidence), action items listed. Post-Mortem (Within 24
hours): the document with the guide's six questions (pre-filled where the record answers them, prompts
where only people can), the prevention checklist as action items with an owner field, and a reminder of
the meeting posted in the incident thread (once per incident, claimed in the store).

Which flow runs belong to the incident: the one intake started (`incident.flow_run_id`), those that
claimed its actions, the runs of the flows named in its timeline whose `incident` parameter names it,
and the subflows of all these.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterStartTime,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterLevel,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import LogSort
from pydantic import Field

from runbook.errors import NotFound, RunbookError
from runbook.models import ActionStatus, Evidence, Incident, TimelineEntry, utc_now
from runbook.postmortem import LogLine, PostMortemRecord, RunInfo, meeting_reminder, render_postmortem
from tasks import runtime
from tasks.slack import SlackFailed, SlackNotConfigured, post_message

__all__ = ["collect_runs", "postmortem"]

ACTOR = "postmortem"
_MAX_ARTIFACT_CHARS = 6000


def _incident_of(run: FlowRun) -> str | None:
    """The incident a run was started for: its `incident_id` parameter (the form's and intake's), or the
    `incident` of a Python caller."""
    parameters = run.parameters or {}
    if parameters.get("incident_id"):
        return str(parameters["incident_id"])
    ref = parameters.get("incident")
    return str(ref.get("incident_id")) if isinstance(ref, dict) and ref.get("incident_id") else None


def collect_runs(client: SyncPrefectClient, incident: Incident, run_ids: set[str]) -> list[FlowRun]:
    """The incident's flow runs (see the module docstring), oldest first."""
    found: dict[str, FlowRun] = {}
    ids = {UUID(i) for i in run_ids if i}
    if ids:
        for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(ids)))):
            found[str(run.id)] = run
    names = sorted({e.actor.split(":", 1)[1] for e in incident.timeline if e.actor.startswith("runbook:")})
    if names:
        end = (incident.resolved_at or utc_now()) + timedelta(minutes=5)
        window = FlowRunFilter(
            start_time=FlowRunFilterStartTime(after_=incident.started_at - timedelta(minutes=5), before_=end)
        )
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=names)), flow_run_filter=window, limit=200
        )
        found.update({str(r.id): r for r in runs if _incident_of(r) == incident.id})
    parents = list(found)
    for _depth in range(3):  # subflows of subflows, bounded
        if not parents:
            break
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(p) for p in parents])
            ),
            limit=200,
        )
        parents = [str(c.id) for c in children if str(c.id) not in found]
        found.update({str(c.id): c for c in children})
    return sorted(
        found.values(), key=lambda r: (r.start_time or r.expected_start_time or utc_now(), str(r.id))
    )


def _parent_run(client: SyncPrefectClient, run: FlowRun) -> str | None:
    if run.parent_task_run_id is None:
        return None
    task_run = client.read_task_run(run.parent_task_run_id)
    return str(task_run.flow_run_id) if task_run.flow_run_id else None


def gather(incident_id: str, min_log_level: int = 30) -> PostMortemRecord:
    """Everything the record holds about the incident: store, Prefect runs, logs and artifacts."""
    store = runtime.store()
    try:
        incident = store.get_incident(incident_id)
    except NotFound as exc:
        raise RunbookError(f"incident_id: no incident {incident_id!r} in the store") from exc
    alerts = store.list_alerts(incident_id=incident_id)
    actions = store.list_actions(incident_id)
    run_ids = {r for r in [incident.flow_run_id, *(a.run_id for a in actions)] if r}
    with get_client(sync_client=True) as client:
        runs = collect_runs(client, incident, run_ids)
        flows = {f.id: f.name for f in client.read_flows(flow_filter=FlowFilter(), limit=200)} if runs else {}
        infos = [
            RunInfo(
                id=str(r.id),
                name=r.name,
                flow_name=flows.get(r.flow_id, str(r.flow_id)),
                state=r.state.name if r.state else "unknown",
                start_time=r.start_time,
                end_time=r.end_time,
                parent_id=_parent_run(client, r),
            )
            for r in runs
        ]
        ids = [r.id for r in runs]
        logs = (
            client.read_logs(
                log_filter=LogFilter(
                    flow_run_id=LogFilterFlowRunId(any_=ids), level=LogFilterLevel(ge_=min_log_level)
                ),
                sort=LogSort.TIMESTAMP_ASC,
                limit=200,
            )
            if ids
            else []
        )
        artifacts = (
            client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
            )
            if ids
            else []
        )
    evidence = [
        Evidence(
            kind="artifact",
            title=f"{a.key or a.type} ({a.description or 'flow run artifact'})",
            content=str(a.data)[:_MAX_ARTIFACT_CHARS],
        )
        for a in artifacts
        if a.type == "markdown"
    ]
    return PostMortemRecord(
        incident=incident,
        alerts=alerts,
        actions=actions,
        runs=infos,
        logs=[
            LogLine(
                at=log.timestamp,
                level=log.level,
                flow_run_id=str(log.flow_run_id) if log.flow_run_id else None,
                message=log.message,
            )
            for log in logs
        ],
        evidence=evidence,
        generated_at=utc_now(),
    )


@flow(
    name="postmortem", description="Post-Incident: timeline, the six questions, prevention items, reminder."
)
def postmortem(
    incident_id: Annotated[str, Field(min_length=1, max_length=64)],
    output_dir: str = "var/postmortems",
    remind: bool = True,
    min_log_level: Annotated[int, Field(ge=10, le=50)] = 30,
) -> str:
    """Post-mortem of one incident: the document (artifact and file) and the meeting reminder in its thread.

    Args:
        incident_id: the incident (usually resolved) to write the post-mortem of
        output_dir: where the markdown file is written (created if missing)
        remind: post the post-mortem meeting reminder (within 24 hours) in the incident's Slack thread
        min_log_level: logs at or above this level are collected (30 warnings and errors, 40 errors)
    """
    logger = get_run_logger()
    store = runtime.store()
    record = gather(incident_id, min_log_level)
    incident = record.incident
    runtime.bind(incident.service)  # its Slack channels and contacts (tasks/runtime.py)
    markdown = render_postmortem(record)
    path = Path(output_dir) / f"{incident.started_at:%Y-%m-%d}-{incident.id[:12]}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown, encoding="utf-8")
    create_markdown_artifact(
        key=f"postmortem-{incident.id[:12].lower()}",
        markdown=markdown,
        description=f"Post-mortem: {incident.title}",
    )
    store.append_timeline(
        incident.id,
        TimelineEntry(actor=ACTOR, kind="postmortem", message=f"post-mortem document written: {path}"),
    )
    logger.info("post-mortem of %s written to %s", incident.id, path)
    if remind:
        remind_in_thread(incident, record.meeting_due)
    return str(path)


def remind_in_thread(incident: Incident, due_at: Any) -> None:
    """The meeting reminder in the incident thread, once per incident (claimed in the store)."""
    store = runtime.store()
    settings = runtime.settings().slack

    def note(message: str) -> None:
        store.append_timeline(incident.id, TimelineEntry(actor=ACTOR, kind="message", message=message))

    if incident.slack_thread_ts is None:
        note("no incident thread in Slack: post-mortem meeting reminder not posted")
        return
    channel = settings.incidents_channel
    claim = store.claim_action(
        incident.id, "postmortem-reminder", f"slack:{channel}:{incident.slack_thread_ts}"
    )
    if not claim.won:
        get_run_logger().info("reminder already posted for %s (%s)", incident.id, claim.record.status)
        return
    text = meeting_reminder(incident, due_at, (settings.oncall_handle, settings.lead_handle))
    try:
        message = post_message(channel, text, thread_ts=incident.slack_thread_ts)
    except SlackNotConfigured:
        store.finish_action(claim.record.key, ActionStatus.SKIPPED, "Slack not configured")
        note("Slack not configured: post-mortem meeting reminder undelivered")
        return
    except SlackFailed as exc:
        store.finish_action(claim.record.key, ActionStatus.FAILED, str(exc)[:500])
        note(f"post-mortem meeting reminder undelivered: {exc}")
        return
    store.finish_action(claim.record.key, ActionStatus.SUCCEEDED, f"ts {message.ts}")
    note(f"post-mortem meeting reminder posted in the incident thread (due {due_at:%Y-%m-%d %H:%M} UTC)")
