"""Guide: P3 - Medium Severity and P4 - Low Severity.

P3: assess impact, document the workaround, schedule the fix for the non-critical window
(tasks/backlog.py), notify the team in #incidents; escalate only when several issues are open; never page.
P4: a backlog item (discuss in standup, next sprint); nobody is notified, nothing is paged.

Usage::

    result = p3(rec, Comms(rec), incident, opts)
    result = p4(rec, incident)
"""

from __future__ import annotations

from flows.comms import Comms
from flows.record import Record
from flows.response.options import ResponseOptions
from flows.targets import probe_service
from runbook.messages import clock, header_label
from runbook.models import Incident, RunbookOutcome, RunbookResult, utc_now
from tasks import runtime
from tasks.backlog import BacklogItem, add_backlog_item, next_window

__all__ = ["p3", "p4"]


def p3(rec: Record, comms: Comms, incident: Incident, opts: ResponseOptions) -> RunbookResult:
    """P3: assess impact, document the workaround, schedule the fix, notify the team; never page."""
    store = runtime.store()
    probe = probe_service()
    rec.note("assess", f"impact: {probe.summary()}")
    alerts = store.list_alerts(incident_id=incident.id)
    workaround = opts.workaround or next(
        (a.annotations["workaround"] for a in alerts if "workaround" in a.annotations), ""
    )
    if workaround:
        rec.note("workaround", f"workaround: {workaround}")
    else:
        rec.note("workaround", "no workaround documented yet: asked in #incidents")
    due = next_window(utc_now(), opts.fix_window)
    entry = add_backlog_item(
        BacklogItem.for_incident(
            incident,
            kind="fix",
            title=f"Fix: {incident.title}",
            description=f"Workaround: {workaround or 'none documented'}. Incident {incident.id}.",
            due=due,
        )
    )
    others = [
        i
        for i in store.list_incidents(open_only=True)
        if i.id != incident.id and i.service == incident.service
    ]
    lines = [
        f"{header_label(incident.severity)} {incident.title}",
        "",
        f"Time: {clock(incident.started_at)}",
        f"Impact: {'workaround available' if workaround else 'no workaround documented yet: reply here if you know one'}",
        f"Workaround: {workaround or 'none yet'}",
        f"Fix scheduled: {due:%Y-%m-%d %H:%M} UTC (non-critical window)",
        "No escalation (P3).",
    ]
    comms.send("notify-team", runtime.settings().slack.incidents_channel, "\n".join(lines))
    if others:
        # "No need to escalate unless multiple issues"
        slack = runtime.settings().slack
        comms.send(
            "multiple-issues",
            slack.incidents_channel,
            f"🚨 {slack.lead_handle}: {len(others) + 1} open incidents on {incident.service}; escalating ({incident.title})",
        )
        rec.note("escalate", f"multiple issues: {len(others) + 1} open incidents on {incident.service}")
    return rec.finish(
        RunbookOutcome.MITIGATED,
        f"P3: {'workaround documented' if workaround else 'no workaround yet'}; fix scheduled for "
        f"{due:%Y-%m-%d %H:%M} UTC ({entry.ref}); team notified",
    )


def p4(rec: Record, incident: Incident) -> RunbookResult:
    """P4: add to backlog (discuss in standup, schedule in next sprint); no notification, no page."""
    entry = add_backlog_item(
        BacklogItem.for_incident(
            incident,
            kind="backlog",
            title=incident.title,
            description=f"P4 from incident {incident.id}: discuss in standup, schedule in next sprint.",
        )
    )
    rec.note("backlog", f"added to the backlog ({entry.ref}): discuss in standup, schedule in next sprint")
    return rec.finish(RunbookOutcome.MITIGATED, f"P4: added to the backlog ({entry.ref}); no escalation")
