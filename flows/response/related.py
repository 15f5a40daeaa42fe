"""Related incidents: a second alert about a service that is already being handled joins that response.

Two different alerts about one failure (the probe's "service down" and the error-rate rule, 50 ms
apart) open two incidents, because their dedupe keys differ. Without this module each `respond` would
open its own Slack thread, page on its own and run its own runbook against the same Deployment.

The rule (guide: one incident commander, one thread): an incident opened for a service that already
has an open incident of the same or higher level, started within `RUNBOOK_RESPONSE_RELATED_WINDOW_MIN`
(default 10 min) before it, is *linked* to the earliest such incident, its primary (one that was open
when ours started counts even if it was resolved before our run looked: a slow start must not open a
second thread for a problem already fixed). Its `respond`:
- writes the link, and why, in both timelines (kind `related`; the post-mortem lists the timeline);
- posts into the primary's Slack thread (no thread, ack or page of its own);
- runs no runbook while the primary's response is acting; when the primary is resolved it probes the
  service itself and, healthy, resolves with it ("resolved with incident …");
- continues on its own (its own response by level) when the primary's response ends without fixing
  it, when the primary never gets a response within the grace period, or when the service is still
  unhealthy after the primary was resolved.

Which incident is the primary is decided by (started_at, id) order, so two runs starting together
agree without talking: each links only to an *earlier* incident, never to a later one, and a chain
resolves to its root. Written by hand: no library decides this; it is the guide's rule over the store.

Usage (in `respond`)::

    primary = primary_for(latest)                 # None: nothing related, respond as usual
    if primary is not None:
        joined = follow_primary(rec, latest, primary, opts)
        if joined is not None:
            return joined                          # resolved with the primary (or still linked at the end)
"""

from __future__ import annotations

import time
from datetime import timedelta

from flows.comms import THREAD_KIND, Comms
from flows.record import Record
from flows.response.options import ResponseOptions
from flows.response.ownership import run_active
from flows.targets import probe_service
from runbook.models import (
    ActionStatus,
    Incident,
    IncidentStatus,
    RunbookOutcome,
    RunbookResult,
    TimelineEntry,
    utc_now,
)
from runbook.severity import Severity
from tasks import runtime

__all__ = ["RELATED_KIND", "follow_primary", "primary_for", "responder"]

RELATED_KIND = "related"
"""Timeline kind of the link, in both incidents."""

GRACE_S = 60.0
"""How long a primary may go without a live response (its run not started yet) before we act alone."""

_RANK = {Severity.P1: 1, Severity.P2: 2, Severity.P3: 3, Severity.P4: 4}


def _order(incident: Incident) -> tuple[float, str]:
    return (incident.started_at.timestamp(), incident.id)


def primary_for(incident: Incident, window: timedelta | None = None) -> Incident | None:
    """The incident `incident` is linked to, or None.

    That is the earliest incident of the same service, of the same or a higher level, started at most
    `window` (the settings' related window) before `incident` and still open when `incident` started
    (it may have been resolved since: then we only verify and resolve with it). Never a later one, so
    two runs deciding at once agree on which of them leads.
    """
    if window is None:
        window = timedelta(minutes=runtime.settings().response.related_window_min)
    if window <= timedelta(0):
        return None
    mine = _order(incident)
    earliest = incident.started_at - window
    candidates = [
        other
        for other in runtime.store().list_incidents(limit=500)
        if other.id != incident.id
        and other.service == incident.service
        and _RANK[other.severity] <= _RANK[incident.severity]
        and other.started_at >= earliest
        and _order(other) < mine
        and (other.resolved_at is None or other.resolved_at > incident.started_at)
    ]
    return min(candidates, key=_order, default=None)


def responder(incident_id: str) -> tuple[str | None, bool]:
    """(the run id holding the incident's response, whether any response has finished) from its claims."""
    live: str | None = None
    ended = False
    for action in runtime.store().list_actions(incident_id):
        if action.action != "respond" or not action.target.startswith("lifecycle-"):
            continue
        if action.status == ActionStatus.CLAIMED:
            live = action.run_id
        else:
            ended = True
    return live, ended


def _thread_of(incident_id: str) -> tuple[str, str] | None:
    """(channel, ts) of the incident's Slack thread, once its response has opened it."""
    incident = runtime.store().get_incident(incident_id)
    if not incident.slack_thread_ts:
        return None
    channel = runtime.settings().slack.incidents_channel
    for entry in incident.timeline:
        if (
            entry.kind == THREAD_KIND
            and entry.evidence
            and entry.evidence.get("ts") == incident.slack_thread_ts
        ):
            channel = str(entry.evidence.get("channel") or channel)
    return channel, incident.slack_thread_ts


def _link(rec: Record, incident: Incident, primary: Incident) -> None:
    why = (
        f"same service ({incident.service}), {primary.severity} open since "
        f"{primary.started_at:%H:%M:%S} UTC, {incident.severity} opened "
        f"{int((incident.started_at - primary.started_at).total_seconds())} s after it"
    )
    rec.note(
        RELATED_KIND,
        f"linked to incident {primary.id} ({primary.title}): {why}; following its response, "
        "no runbook of our own while it acts",
        evidence={"primary": primary.id, "why": why},
    )
    runtime.store().append_timeline(
        primary.id,
        TimelineEntry(
            actor=rec.actor,
            kind=RELATED_KIND,
            message=f"incident {incident.id} ({incident.title}) linked to this one: {why}",
            evidence={"linked": incident.id, "why": why},
        ),
    )
    if incident.status == IncidentStatus.TRIGGERED:
        runtime.store().set_status(
            incident.id,
            IncidentStatus.ACKNOWLEDGED,
            utc_now(),
            rec.actor,
            f"handled with incident {primary.id}",
        )


def _post(rec: Record, comms: Comms, primary: Incident, key: str, text: str, posted: set[str]) -> None:
    """Post `text` once into the primary's thread (when it has one yet)."""
    if key in posted:
        return
    thread = _thread_of(primary.id)
    if thread is None:
        return
    posted.add(key)
    comms.send(key, thread[0], text, thread_ts=thread[1])
    if key == "related":
        runtime.store().update_incident(rec.incident.id, slack_thread_ts=thread[1])


def follow_primary(
    rec: Record, incident: Incident, primary: Incident, opts: ResponseOptions
) -> RunbookResult | None:
    """Follow the primary's response: a result (resolved with it, or still linked when our time is up),
    or None: go on alone (the primary's response ended without fixing it, never started, or the service
    is unhealthy after the primary was resolved)."""
    store = runtime.store()
    comms = Comms(rec)
    _link(rec, incident, primary)
    posted: set[str] = set()
    linked_at = time.monotonic()
    deadline = linked_at + opts.handover_s + opts.stability_s + GRACE_S
    while True:
        _post(
            rec,
            comms,
            primary,
            "related",
            f"🔗 Related alert: {incident.title} ({incident.severity}, incident {incident.id}); "
            "handled in this thread.",
            posted,
        )
        current = store.get_incident(primary.id, with_timeline=False)
        if not current.is_open:
            return _after_primary(rec, comms, incident, current, posted)
        live, ended = responder(primary.id)
        if live is not None and not run_active(live):
            live = None
        if live is None and (ended or time.monotonic() - linked_at > GRACE_S):
            reason = (
                "its response ended with it open"
                if ended
                else f"it has had no live response for {int(GRACE_S)} s"
            )
            rec.note(
                RELATED_KIND, f"incident {primary.id} is not being handled ({reason}): responding on our own"
            )
            return None
        if time.monotonic() + opts.poll_s > deadline:
            return rec.finish(
                RunbookOutcome.ESCALATED,
                f"linked to incident {primary.id}, still open and handled by people (status {current.status})",
            )
        time.sleep(opts.poll_s)


def _after_primary(
    rec: Record, comms: Comms, incident: Incident, primary: Incident, posted: set[str]
) -> RunbookResult | None:
    """The primary was resolved: probe the service ourselves; healthy → resolve with it, else go on alone."""
    probe = probe_service()
    rec.note("verify", probe.summary())
    if not probe.healthy:
        rec.note(
            RELATED_KIND,
            f"incident {primary.id} was resolved but {incident.service} is unhealthy: responding on our own",
        )
        return None
    summary = f"resolved with incident {primary.id} (health verified: {probe.summary()})"
    _post(
        rec,
        comms,
        primary,
        "related-resolved",
        f"✅ Related incident {incident.id} resolved with this one.",
        posted,
    )
    runtime.store().set_status(incident.id, IncidentStatus.RESOLVED, utc_now(), rec.actor, summary)
    return rec.finish(RunbookOutcome.RECOVERED, summary)
