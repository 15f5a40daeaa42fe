"""Guide: Communication During Incident › the all-clear, and Post-Incident: the incident resolved, the
all-clear in the guide's format (root cause, impact with the numbers, resolution, follow-up), the page
resolved on the same dedup_key, the post-mortem scheduled and its run started.

Usage (status updates stopped)::

    all_clear(rec, comms, resolution, result, opts, estimate="All users affected")
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

from flows.comms import Comms
from flows.diagnoses import MetricsUnavailable, read_metrics
from flows.record import Record
from flows.response.options import Resolution, ResponseOptions
from runbook.messages import AllClear, format_duration, render_all_clear, whole_minutes
from runbook.models import Incident, IncidentStatus, RunbookResult, utc_now
from tasks import runtime
from tasks.backlog import BacklogItem, add_backlog_item, next_window

__all__ = ["all_clear", "start_postmortem"]


def all_clear(
    rec: Record,
    comms: Comms,
    resolution: Resolution,
    result: RunbookResult,
    opts: ResponseOptions,
    estimate: str,
) -> None:
    """Status updates have stopped: resolve, post the guide's all-clear, resolve the page."""
    store = runtime.store()
    incident = comms.incident
    now = utc_now()
    impact, numbers = _impact(incident, now, opts, estimate)
    follow_up = _follow_up(rec, incident, now, opts)
    store.set_status(incident.id, IncidentStatus.RESOLVED, now, rec.actor, f"resolved: {resolution.summary}")
    message = AllClear(
        title=incident.title if incident.title.lower().endswith("incident") else f"{incident.title} Incident",
        started_at=incident.started_at,
        resolved_at=now,
        root_cause=resolution.root_cause[:300],
        impact=impact,
        resolution=[*resolution.resolution, "All services back to normal", *numbers],
        follow_up=follow_up,
    )
    comms.post("all-clear", render_all_clear(message))
    if comms.paged():
        comms.page("resolve", "resolve")
    start_postmortem(rec, incident)


def start_postmortem(rec: Record, incident: Incident) -> None:
    """Post-Incident: the post-mortem run of this incident (once: keyed by the incident), not awaited."""
    name = runtime.settings().prefect.postmortem_deployment
    try:
        run = run_deployment(
            name,
            parameters={"incident_id": incident.id},
            timeout=0,
            idempotency_key=f"postmortem:{incident.id}",
            as_subflow=False,
        )
    except ObjectNotFound:
        rec.note(
            "postmortem", f"no deployment {name!r}: run the post-mortem by hand (incident {incident.id})"
        )
        return
    except Exception as exc:  # the all-clear is out; a post-mortem that cannot start is said, not fatal
        rec.note("postmortem", f"could not start {name!r}: {type(exc).__name__}: {exc}"[:300])
        return
    rec.note(
        "postmortem", f"post-mortem started: {name} run {getattr(run, 'name', '')} ({getattr(run, 'id', '')})"
    )


def _impact(incident: Incident, now: datetime, opts: ResponseOptions, estimate: str) -> tuple[str, list[str]]:
    """ "150 requests failed (0.3% of total)" over the incident, and the error rate and p95 now.

    Without the service's metrics, or with no request recorded while it lasted, the triage's estimate
    for the incident's duration ("All users affected for 8 minutes").
    """
    window = max(1.0, (now - incident.started_at).total_seconds())
    lasted = format_duration(whole_minutes(incident.started_at, now))
    try:
        during = read_metrics(window)
        after = read_metrics(max(1.0, opts.stability_s))
    except MetricsUnavailable:
        return f"{estimate} for {lasted} (no metrics)", []
    if not during.requests:
        impact = f"{estimate} for {lasted} (no requests recorded)"
    else:
        impact = (
            f"{during.errors} requests failed ({round(100 * during.errors / during.requests, 2):g}% of total)"
        )
    if not after.requests:
        return impact, []
    return impact, [f"Error rate: {after.error_rate_pct:g}%", f"P95 response time: {after.p95_ms:g}ms"]


def _follow_up(rec: Record, incident: Incident, now: datetime, opts: ResponseOptions) -> list[str]:
    """Post-mortem within 24 hours (scheduled on the backlog), the runbook's own follow-ups, alerting."""
    due = next_window(now, opts.postmortem_at, min_lead=timedelta(hours=1))
    day = "today" if due.date() == now.astimezone(UTC).date() else "tomorrow"
    add_backlog_item(
        BacklogItem.for_incident(
            incident,
            kind="post-mortem",
            title=f"Post-mortem: {incident.title}",
            description=incident.id,
            due=due,
        )
    )
    lines = [f"Post-mortem scheduled for {due:%H:%M} UTC {day}"]
    lines += [e.title.capitalize() if e.title else e.kind for e in rec.evidence if e.kind == "follow-up"][:3]
    lines.append(f"Alerting reviewed to catch '{incident.title}' earlier")
    return lines
