"""Guide: Escalation Contacts (on-call → team lead → DevOps; security incidents → the security team) and
the Severity Levels' response times (P1 5 min, P2 15 min), whose chains `runbook.policy` holds as data.

Usage (inside the `respond` flow)::

    watch = EscalationWatch(comms.detached(), deadline_scale=1.0, poll_s=10)
    with background(watch):
        ...                                   # the response; `watch.acknowledge(person, how)` by hand

Acknowledgement: a person's reaction (any emoji) on the #alerts-critical acknowledgement or on the
thread's first message, read with `reactions.get`, or a resume input in the Prefect UI (`respond`).
Our own bot never reacts, and its user id is excluded anyway. Escalation follows
`runbook.policy.escalation_chain` for the incident's *current* severity (re-read every tick, so a
reclassification P2 → P1 re-drives the deadlines from the incident's start), each step due at
`started_at + step.after × deadline_scale` (1.0: the guide's times; drills and tests shrink them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flows.background import guarded
from flows.comms import Comms
from flows.flow_run import run_logger
from runbook.messages import clock, header_label, human_duration
from runbook.models import ActionStatus, Incident, IncidentStatus, utc_now
from runbook.policy import Contact, EscalationStep, contact_address, escalation_chain
from runbook.severity import LEVELS, Severity
from runbook.store import Deadline
from tasks import runtime
from tasks.slack import Reaction, SlackFailed, read_reactions, whoami

__all__ = ["EscalationWatch"]


@dataclass
class EscalationWatch:
    """Escalation timers: reads acknowledgements, escalates what is due (see the module docstring)."""

    comms: Comms
    deadline_scale: float = 1.0
    poll_s: float = 10.0
    clock: Callable[[], datetime] = utc_now
    name: str = "escalation"
    acknowledged_by: str | None = None
    level: Severity | None = None
    """The level the response started at; a more severe one read on a tick is announced (`level_raised`)."""
    _bot: str | None = field(default=None, init=False)
    _deadline_noted: set[str] = field(default_factory=set, init=False)
    _escalated: set[str] = field(default_factory=set, init=False)
    _stored: set[Severity] = field(default_factory=set, init=False)
    _page_acknowledged: bool = field(default=False, init=False)
    _announced: set[Severity] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- the plan ---------------------------------------------------------------------------------------
    @staticmethod
    def _chain(incident: Incident) -> list[EscalationStep]:
        return [
            step
            for step in escalation_chain(incident.severity, security=incident.security)
            if step.contact not in (Contact.TEAM, Contact.BACKLOG)  # the P3/P4 responses tell those
        ]

    def plan(self, incident: Incident) -> list[tuple[EscalationStep, datetime]]:
        return [
            (step, incident.started_at + step.after * self.deadline_scale) for step in self._chain(incident)
        ]

    def store_plan(self, incident: Incident) -> None:
        """Store the current level's deadlines with the incident (once per level: a stored step keeps its
        due time), each with what firing it sends, so they fire even if this process dies (intake's
        sweeper fires what is overdue, intake/sweep.py)."""
        if incident.severity in self._stored:
            return
        planned = [
            Deadline(
                incident_id=incident.id,
                key=f"{incident.severity}:{step.key}",
                severity=incident.severity.value,
                due_at=due,
                unacknowledged_only=step.unacknowledged_only,
                notices=self.notices(incident, step, self._reason(step)),
            )
            for step, due in self.plan(incident)
        ]
        runtime.store().plan_deadlines(incident.id, planned)
        self._stored.add(incident.severity)

    def _reason(self, step: EscalationStep) -> str:
        after = human_duration(step.after * self.deadline_scale)
        return f"not acknowledged within {after}" if step.unacknowledged_only else step.reason

    def deadline(self, incident: Incident) -> datetime:
        """When a person must have acknowledged: start + the level's response time (scaled)."""
        return incident.started_at + LEVELS[incident.severity].response_time * self.deadline_scale

    def acknowledged(self, incident: Incident) -> bool:
        return self.acknowledged_by is not None or incident.acknowledged_at is not None

    # -- acknowledgement --------------------------------------------------------------------------------
    def _bot_id(self) -> str | None:
        if self._bot is None:
            try:
                self._bot = whoami()
            except SlackFailed as exc:
                run_logger("flows.escalation").warning(
                    "Slack auth.test failed (%s): reactions are not filtered", exc
                )
                return None
        return self._bot

    def read_acknowledgement(self) -> tuple[str, str] | None:
        """(person, how) from the first reaction by someone other than us on an acknowledgement target."""
        bot = self._bot_id()
        for channel, ts in self.comms.ack_targets():
            try:
                reactions: list[Reaction] = read_reactions(channel, ts)
            except SlackFailed as exc:
                run_logger("flows.escalation").warning("reactions.get on %s/%s failed: %s", channel, ts, exc)
                continue
            for reaction in reactions:
                people = [u for u in reaction.users if u != bot]
                if people:
                    return people[0], f":{reaction.name}: on {channel}/{ts}"
        return None

    def acknowledge(self, person: str, how: str) -> None:
        """A person took the incident: record it, move the status, acknowledge the page (once)."""
        if self.acknowledged_by is not None:
            return
        self.acknowledged_by = person
        rec = self.comms.rec
        incident = self.comms.incident
        rec.note("acknowledged", f"acknowledged by person:{person} ({how})", evidence={"person": person})
        if incident.status == IncidentStatus.TRIGGERED:
            runtime.store().set_status(
                incident.id,
                IncidentStatus.ACKNOWLEDGED,
                self.clock(),
                f"person:{person}",
                f"acknowledged ({how})",
            )
        self.comms.post("acknowledged", f"👀 Acknowledged by <@{person}> at {clock(self.clock())}")
        self._acknowledge_page()

    def _acknowledge_page(self) -> None:
        """Once a person has the incident, its PagerDuty alert (if one was raised) is acknowledged."""
        if self._page_acknowledged or self.acknowledged_by is None or not self.comms.paged():
            return
        self._page_acknowledged = True
        self.comms.page("acknowledge", "acknowledge")

    # -- escalation -------------------------------------------------------------------------------------
    def tick(self) -> None:
        """One look: acknowledgements, then every step due now that still applies, each once."""
        incident = self.comms.incident
        if not incident.is_open:
            return
        seen, self.level = self.level, incident.severity
        if seen is not None and incident.severity.more_severe_than(seen):
            self.level_raised(incident, seen, self._raised_because(incident))
        if not self.acknowledged(incident):
            found = self.read_acknowledgement()
            if found is not None:
                self.acknowledge(*found)
        self.store_plan(incident)
        now = self.clock()
        acked = self.acknowledged(incident)
        steps = {step.key: step for step in self._chain(incident)}
        for stored in runtime.store().deadlines(incident.id):
            step = steps.get(stored.key.partition(":")[2])
            if stored.severity != incident.severity or stored.due_at > now or step is None:
                continue
            if step.unacknowledged_only and acked:
                self._note_deadline_met(incident, step)
                continue
            if stored.fired_at is None:
                self.escalate(incident, step, stored.due_at, stored.notices)
        self._acknowledge_page()  # a page raised after the acknowledgement (P2 → P1) is acknowledged too

    # -- the level raised while the response runs ------------------------------------------------------
    def level_raised(self, incident: Incident, was: Severity, reason: str) -> None:
        """Say in the thread, once per level, that the incident is now `incident.severity` and what that
        level's timeline is from the incident's start (its deadline, who is told when, who is paged).

        The plan itself needs nothing more: every tick reads the current level (see `plan`), so the
        new level's steps already due happen on this tick and the rest on their time.
        """
        with self._lock:
            if incident.severity in self._announced:
                return
            self._announced.add(incident.severity)
        now = self.clock()
        steps = [
            f"{step.contact.value} {'now' if due <= now else 'at ' + clock(due)}"
            + (" (paged)" if step.page else "")
            for step, due in self.plan(incident)
        ]
        self.comms.rec.note(
            "level", f"{was} → {incident.severity}: the {incident.severity} timeline applies now"
        )
        self.comms.post(
            f"reclassify-{incident.severity}",
            f"⬆️ Reclassified {was} → {incident.severity}: {reason}\n"
            f"{LEVELS[incident.severity].label} timeline from the start ({clock(incident.started_at)}): "
            f"acknowledge by {clock(self.deadline(incident))}; escalation: {', '.join(steps) or 'none'}",
        )

    @staticmethod
    def _raised_because(incident: Incident) -> str:
        """Why the level went up: the store's `severity_raised` entry (a worse alert joined), else the rule."""
        entries = runtime.store().timeline(incident.id)
        raised = [e for e in entries if e.kind == "severity_raised"]
        return raised[-1].message if raised else f"rule {incident.severity_rule}"

    def _note_deadline_met(self, incident: Incident, step: EscalationStep) -> None:
        key = f"{incident.severity}:{step.key}"
        if key in self._deadline_noted:
            return
        self._deadline_noted.add(key)
        self.comms.rec.note(
            "deadline",
            f"{incident.severity} response time ({human_duration(step.after * self.deadline_scale)}) passed; "
            f"acknowledged by {self.acknowledged_by or 'a person'}: no escalation to {step.contact.value}",
        )

    def escalate(
        self,
        incident: Incident,
        step: EscalationStep,
        due: datetime,
        notices: list[dict[str, Any]] | None = None,
    ) -> None:
        """Tell `step.contact` (Slack) and page when the step says so; claimed once per level and step
        (`("escalate", "P1:lead")`: the same claim intake's sweeper takes), then marked fired."""
        key = f"{incident.severity}:{step.key}"
        if key in self._escalated:
            return
        self._escalated.add(key)
        reason = self._reason(step)
        sends = notices if notices is not None else self.notices(incident, step, reason)
        done = self.comms.rec.act(
            "escalate", key, lambda: self._send_notices(sends), f"{step.contact.value} ({reason})"
        )
        if done.record.status == ActionStatus.REFUSED:
            held = runtime.store().get_action(done.record.key)
            if held is not None and held.status == ActionStatus.CLAIMED:
                return  # another holder is at it (or died too recently to tell): it, or the sweeper, settles it
        runtime.store().mark_fired(incident.id, key, self.comms.rec.actor, self.clock())

    def notices(self, incident: Incident, step: EscalationStep, reason: str) -> list[dict[str, Any]]:
        """What firing `step` sends, as data (stored with the deadline; intake/sweep.py sends the same):
        `post` (a reply in the incident thread), `send` (a message to a channel), `note` (the timeline),
        `page` (a PagerDuty trigger on the incident's dedup_key)."""
        slack = runtime.settings().slack
        address = contact_address(step.contact, slack)
        label = f"{header_label(incident.severity)} {incident.title}"
        key = f"escalate-{incident.severity}-{step.key}"
        out: list[dict[str, Any]] = []
        if step.contact == Contact.LEAD:
            out.append(
                {
                    "kind": "post",
                    "key": key,
                    "text": f"🚨 {address}: escalated to you (team lead): {reason}. {label}",
                }
            )
        elif step.contact == Contact.DEVOPS:
            thread = self.comms.thread()
            where = f" (thread {thread[1]} in {slack.incidents_channel})" if thread else ""
            out.append(
                {
                    "kind": "send",
                    "key": key,
                    "channel": address,
                    "text": f"🚨 Escalated to DevOps: {reason}. {label}{where}",
                }
            )
            out.append({"kind": "post", "key": key, "text": f"🚨 Escalated to DevOps ({address}): {reason}"})
        elif step.contact == Contact.SECURITY:
            out.append(
                {
                    "kind": "post",
                    "key": key,
                    "text": f"🔐 {address}: security incident, please assess (breach assessment, user notification). "
                    f"{label}. Email: {slack.security_email}",
                }
            )
            out.append(
                {
                    "kind": "note",
                    "text": f"security team to be emailed at {slack.security_email} (no mail integration)",
                }
            )
        if step.page:
            summary = f"[{incident.severity}] {incident.title}"
            if step.contact != Contact.ONCALL:
                summary = (
                    f"[{incident.severity}] escalated to {step.contact.value} ({reason}): {incident.title}"
                )
            out.append(
                {
                    "kind": "page",
                    "key": "trigger" if step.contact == Contact.ONCALL else key,
                    "summary": summary,
                    "details": {"incident": incident.id, "escalated_to": address, "reason": reason},
                }
            )
        return out

    def _send_notices(self, notices: list[dict[str, Any]]) -> None:
        for notice in notices:
            kind = notice["kind"]
            if kind == "post":
                self.comms.post(notice["key"], notice["text"])
            elif kind == "send":
                self.comms.send(notice["key"], notice["channel"], notice["text"])
            elif kind == "note":
                self.comms.rec.note("escalate", notice["text"])
            elif kind == "page" and not (notice["key"] == "trigger" and self.comms.paged()):
                self.comms.page(
                    notice["key"], "trigger", summary=notice["summary"], details=notice["details"]
                )

    def run(self, stop: threading.Event) -> None:
        while True:
            guarded("escalation check", self.comms.rec, self.tick)
            if stop.wait(self.poll_s):
                return
