"""Who is told, how and when: the incident thread, PagerDuty, status updates and escalation timers.

Usage (inside the `respond` flow)::

    comms = Comms(rec)                                    # rec: flows.record.Record of the incident
    comms.acknowledge_alert(text)                         # #alerts-critical
    comms.open_thread(text)                               # #incidents; the ts is stored on the incident
    comms.post("assessment", text)                        # a reply in the thread, once per key
    comms.page("trigger", "trigger", summary=...)         # PagerDuty, on the incident's one dedup_key
    board = Board(title=..., impact=...)
    with background(StatusUpdates(comms.detached(), board, interval_s=300),
                    EscalationWatch(comms.detached(), deadline_scale=1.0, poll_s=10)):
        ...                                               # the response itself

Guide: Communication During Incident (status updates every 5-10 minutes, the all-clear), Escalation
Contacts (on-call → team lead → DevOps; security incidents → the security team), and the Severity
Levels' response times (P1 5 min, P2 15 min), whose chains `runbook.policy` holds as data.

Rules kept here for every message and page:
- each is claimed once per incident in the store before it is sent (`Record.act`), so a retried or
  second run never posts or pages twice;
- Slack or PagerDuty failing never stops the response: the call is retried (tasks/slack.py,
  tasks/pagerduty.py), then recorded in the timeline as `undelivered`, and the caller goes on;
- every PagerDuty event of the incident carries its one `dedup_key` (stored on the incident).

Acknowledgement: a person's reaction (any emoji) on the #alerts-critical acknowledgement or on the
thread's first message, read with `reactions.get`, or a resume input in the Prefect UI (`respond`).
Our own bot never reacts, and its user id is excluded anyway. Escalation follows
`runbook.policy.escalation_chain` for the incident's *current* severity (re-read every tick, so a
reclassification P2 → P1 re-drives the deadlines from the incident's start), each step due at
`started_at + step.after × deadline_scale` (1.0: the guide's times; drills and tests shrink them).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from flows.record import Record
from runbook.messages import ActionLine, StatusUpdate, clock, header_label, render_status_update
from runbook.models import Incident, IncidentStatus, utc_now
from runbook.policy import Contact, EscalationStep, contact_address, escalation_chain
from runbook.severity import LEVELS
from tasks import runtime
from tasks.pagerduty import EventAction, PagerDutyEvent, PagerDutyFailed, send_event
from tasks.pagerduty import trigger_page as trigger_page_task
from tasks.slack import Reaction, SlackFailed, SlackMessage, read_reactions, send_message, whoami
from tasks.slack import post_message as post_message_task

__all__ = [
    "Board",
    "Comms",
    "EscalationWatch",
    "StatusUpdates",
    "background",
    "human_duration",
]

THREAD_KIND = "slack-thread"
ACK_KIND = "slack-ack"


def _log() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("flows.escalation")


def human_duration(delta: timedelta) -> str:
    """`5 min`, `1 h`, `0.5 s` (scaled deadlines in tests and drills are seconds)."""
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes = seconds / 60
    return f"{minutes:g} min" if minutes < 60 else f"{minutes / 60:g} h"


# --- Slack and PagerDuty, each message once, never fatal -------------------------------------------------


@dataclass
class Comms:
    """Every message and page of one incident (see the module docstring).

    `tasks=True` (the flow's own thread) sends through the Prefect tasks, visible in the UI;
    `detached()` gives a copy for background threads that calls the plain functions instead.
    """

    rec: Record
    tasks: bool = True
    _thread: tuple[str, str] | None = field(default=None, init=False)

    def detached(self) -> Comms:
        twin = Comms(self.rec, tasks=False)
        twin._thread = self._thread
        return twin

    # -- the incident, fresh from the store ---------------------------------------------------------
    @property
    def incident(self) -> Incident:
        return runtime.store().get_incident(self.rec.incident.id, with_timeline=False)

    def dedup_key(self) -> str:
        """The incident's one PagerDuty dedup_key (its id unless the store already holds another)."""
        incident = self.incident
        if incident.pagerduty_dedup_key:
            return incident.pagerduty_dedup_key
        runtime.store().update_incident(incident.id, pagerduty_dedup_key=incident.id)
        return incident.id

    def thread(self) -> tuple[str, str] | None:
        """(channel id, ts) of the incident thread, or None when it could not be opened."""
        if self._thread is not None:
            return self._thread
        incident = runtime.store().get_incident(self.rec.incident.id)
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
        self._thread = (channel, incident.slack_thread_ts)
        return self._thread

    def ack_targets(self) -> list[tuple[str, str]]:
        """The messages a person acknowledges by reacting to: the #alerts-critical ack and the thread."""
        incident = runtime.store().get_incident(self.rec.incident.id)
        targets = [
            (str(e.evidence["channel"]), str(e.evidence["ts"]))
            for e in incident.timeline
            if e.kind in (ACK_KIND, THREAD_KIND) and e.evidence and e.evidence.get("ts")
        ]
        return list(dict.fromkeys(targets))

    # -- Slack ------------------------------------------------------------------------------------------
    def _send(self, channel: str, text: str, thread_ts: str | None) -> SlackMessage:
        if self.tasks:
            return post_message_task(channel, text, thread_ts)
        return send_message(channel, text, thread_ts)

    def _undelivered(self, what: str, error: BaseException | None) -> None:
        if error is None:
            return
        attempts = getattr(error, "attempts", 1)
        self.rec.note(
            "undelivered",
            f"{what} not delivered after {attempts} attempt{'s' if attempts != 1 else ''}: {error}",
            evidence={"error": type(error).__name__, "attempts": attempts},
        )

    def send(self, key: str, channel: str, text: str, thread_ts: str | None = None) -> SlackMessage | None:
        """Post `text` to `channel` once per incident and `key`; None when refused or undelivered."""
        where = f"{channel}/{thread_ts}" if thread_ts else channel
        done = self.rec.act(
            "slack",
            f"{channel}:{key}",
            lambda: self._send(channel, text, thread_ts),
            f"post to {where}: {text.splitlines()[0][:120]}",
        )
        if done.error is not None and not isinstance(done.error, SlackFailed):
            raise done.error  # a bug, not Slack failing: never hidden
        self._undelivered(f"Slack message '{key}' to {channel}", done.error)
        return done.value

    def post(self, key: str, text: str) -> SlackMessage | None:
        """A reply in the incident thread (top-level in #incidents if the thread could not be opened)."""
        thread = self.thread()
        if thread is None:
            return self.send(key, runtime.settings().slack.incidents_channel, text)
        return self.send(key, thread[0], text, thread_ts=thread[1])

    def acknowledge_alert(self, text: str) -> SlackMessage | None:
        """Minute 0-1: "Acknowledge Slack alert in #alerts-critical"."""
        message = self.send("ack", runtime.settings().slack.alerts_channel, text)
        if message is not None:
            self.rec.note(
                ACK_KIND,
                f"acknowledged in {runtime.settings().slack.alerts_channel}",
                evidence={"channel": message.channel, "ts": message.ts},
            )
        return message

    def open_thread(self, text: str) -> tuple[str, str] | None:
        """Minute 0-1: "Create incident thread in #incidents"; the thread's ts is stored on the incident.

        Joining an incident whose thread exists returns that thread (never a second one).
        """
        existing = self.thread()
        if existing is not None:
            return existing
        message = self.send("thread", runtime.settings().slack.incidents_channel, text)
        if message is None:
            return None
        runtime.store().update_incident(self.rec.incident.id, slack_thread_ts=message.ts)
        self.rec.note(
            THREAD_KIND,
            f"incident thread opened in {runtime.settings().slack.incidents_channel}",
            evidence={"channel": message.channel, "ts": message.ts},
        )
        self._thread = (message.channel, message.ts)
        return self._thread

    # -- PagerDuty --------------------------------------------------------------------------------------
    def page(
        self,
        key: str,
        action: EventAction,
        *,
        summary: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> PagerDutyEvent | None:
        """One Events v2 event on the incident's dedup_key, once per `key`; None if refused/undelivered."""
        dedup_key = self.dedup_key()
        incident = self.incident

        def send() -> PagerDutyEvent:
            if action == "trigger" and self.tasks:
                return trigger_page_task(dedup_key, str(summary), incident.service, "critical", details)
            return send_event(action, dedup_key, summary=summary, source=incident.service, details=details)

        done = self.rec.act(
            "pagerduty", f"{dedup_key}:{key}", send, f"{action} dedup_key={dedup_key}: {summary or key}"
        )
        if done.error is not None and not isinstance(done.error, PagerDutyFailed):
            raise done.error
        self._undelivered(f"PagerDuty {action} ({key})", done.error)
        return done.value

    def paged(self) -> bool:
        """Whether the incident's PagerDuty alert was triggered (so acknowledge/resolve apply)."""
        key = f"{self.dedup_key()}:trigger"
        return any(
            a.action == "pagerduty" and a.target == key
            for a in runtime.store().list_actions(self.rec.incident.id)
        )


# --- what the status updates say --------------------------------------------------------------------------


@dataclass
class Board:
    """The incident's current story, written by the response, read by the status updates (thread-safe)."""

    title: str
    impact: str = "Assessing impact"
    current_status: list[str] = field(default_factory=lambda: ["Investigating root cause"])
    actions: list[ActionLine] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def status(self, *lines: str) -> None:
        with self._lock:
            self.current_status = [line for line in lines if line]

    def set_impact(self, impact: str) -> None:
        with self._lock:
            self.impact = impact

    def doing(self, text: str) -> None:
        """A new action in progress (→)."""
        with self._lock:
            if not any(a.text == text for a in self.actions):
                self.actions.append(ActionLine(text))

    def done(self, text: str, was: str | None = None) -> None:
        """An action done (✓): replaces the one in progress called `was` (or `text`), else a new line."""
        with self._lock:
            gone = {text, was or text}
            self.actions = [a for a in self.actions if a.text not in gone] + [ActionLine(text, done=True)]

    def snapshot(self) -> tuple[str, str, list[str], list[ActionLine]]:
        with self._lock:
            return self.title, self.impact, list(self.current_status), list(self.actions)


# --- background work, bounded by a stop event -------------------------------------------------------------


class Worker(Protocol):
    name: str

    def run(self, stop: threading.Event) -> None: ...


@contextmanager
def background(*workers: Worker, join_timeout_s: float = 30.0) -> Iterator[threading.Event]:
    """Run `workers` in threads (with the flow run's context) until the block ends; then stop and join."""
    stop = threading.Event()
    threads = []
    for worker in workers:
        ctx = contextvars.copy_context()
        thread = threading.Thread(target=ctx.run, args=(worker.run, stop), name=worker.name, daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield stop
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=join_timeout_s)
            if thread.is_alive():
                _log().error("%s did not stop within %.0fs", thread.name, join_timeout_s)


def _guarded(what: str, rec: Record, step: Callable[[], object]) -> None:
    """One tick of a background loop: a failure is logged and recorded, and the loop goes on."""
    try:
        step()
    except Exception as exc:  # a tick must never end the loop (or the flow); the error is kept
        _log().exception("%s failed", what)
        rec.note("error", f"{what} failed: {type(exc).__name__}: {exc}"[:500])


@dataclass
class StatusUpdates:
    """Guide: Status Updates (every 5-10 minutes), posted in the incident thread while it is open.

    Updates fall on a fixed schedule anchored at the thread's opening: update n is due at
    `anchor + n × interval` and is claimed as `status-update-n`, so a run taking over after a crash
    continues the numbering instead of repeating it. A slot missed (the machine was busy) is skipped.
    """

    comms: Comms
    board: Board
    interval_s: float
    anchor: datetime = field(default_factory=utc_now)
    name: str = "status-updates"
    posted: list[int] = field(default_factory=list)

    def due_slot(self, now: datetime) -> int:
        return int((now - self.anchor).total_seconds() // self.interval_s)

    def post(self, slot: int, now: datetime) -> SlackMessage | None:
        incident = self.comms.incident
        title, impact, status, actions = self.board.snapshot()
        update = StatusUpdate(
            severity=incident.severity,
            title=title,
            started_at=incident.started_at,
            updated_at=now,
            next_update_at=self.anchor + timedelta(seconds=(slot + 1) * self.interval_s),
            impact=impact,
            current_status=status,
            actions=actions,
        )
        message = self.comms.post(f"status-update-{slot}", render_status_update(update))
        if message is not None:
            self.posted.append(slot)
        return message

    def run(self, stop: threading.Event) -> None:
        last = 0
        while True:
            now = utc_now()
            slot = self.due_slot(now)
            if slot > last:
                last = slot
                if self.comms.incident.is_open:
                    _guarded("status update", self.comms.rec, lambda: self.post(slot, now))  # noqa: B023
            wait = (self.anchor + timedelta(seconds=(last + 1) * self.interval_s) - utc_now()).total_seconds()
            if stop.wait(max(0.0, wait)):
                return


@dataclass
class EscalationWatch:
    """Escalation timers: reads acknowledgements, escalates what is due (see the module docstring)."""

    comms: Comms
    deadline_scale: float = 1.0
    poll_s: float = 10.0
    clock: Callable[[], datetime] = utc_now
    name: str = "escalation"
    acknowledged_by: str | None = None
    _bot: str | None = field(default=None, init=False)
    _deadline_noted: set[str] = field(default_factory=set, init=False)
    _escalated: set[str] = field(default_factory=set, init=False)
    _page_acknowledged: bool = field(default=False, init=False)

    # -- the plan ---------------------------------------------------------------------------------------
    def plan(self, incident: Incident) -> list[tuple[EscalationStep, datetime]]:
        return [
            (step, incident.started_at + step.after * self.deadline_scale)
            for step in escalation_chain(incident.severity, security=incident.security)
            if step.contact not in (Contact.TEAM, Contact.BACKLOG)  # the P3/P4 responses tell those
        ]

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
                _log().warning("Slack auth.test failed (%s): reactions are not filtered", exc)
                return None
        return self._bot

    def read_acknowledgement(self) -> tuple[str, str] | None:
        """(person, how) from the first reaction by someone other than us on an acknowledgement target."""
        bot = self._bot_id()
        for channel, ts in self.comms.ack_targets():
            try:
                reactions: list[Reaction] = read_reactions(channel, ts)
            except SlackFailed as exc:
                _log().warning("reactions.get on %s/%s failed: %s", channel, ts, exc)
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
        if not self.acknowledged(incident):
            found = self.read_acknowledgement()
            if found is not None:
                self.acknowledge(*found)
        now = self.clock()
        acked = self.acknowledged(incident)
        for step, due in self.plan(incident):
            if due > now:
                continue
            if step.unacknowledged_only and acked:
                self._note_deadline_met(incident, step)
                continue
            self.escalate(incident, step, due)
        self._acknowledge_page()  # a page raised after the acknowledgement (P2 → P1) is acknowledged too

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

    def escalate(self, incident: Incident, step: EscalationStep, due: datetime) -> None:
        """Tell `step.contact` (Slack) and page when the step says so; claimed once per level and step."""
        key = f"{incident.severity}:{step.key}"
        if key in self._escalated:
            return
        self._escalated.add(key)
        after = human_duration(step.after * self.deadline_scale)
        reason = f"not acknowledged within {after}" if step.unacknowledged_only else step.reason
        self.comms.rec.act(
            "escalate",
            key,
            lambda: self._tell(incident, step, reason),
            f"{step.contact.value} ({reason})",
        )

    def _tell(self, incident: Incident, step: EscalationStep, reason: str) -> None:
        slack = runtime.settings().slack
        address = contact_address(step.contact, slack)
        label = f"{header_label(incident.severity)} {incident.title}"
        key = f"escalate-{incident.severity}-{step.key}"
        if step.contact == Contact.LEAD:
            self.comms.post(key, f"🚨 {address}: escalated to you (team lead): {reason}. {label}")
        elif step.contact == Contact.DEVOPS:
            thread = self.comms.thread()
            where = f" (thread {thread[1]} in {slack.incidents_channel})" if thread else ""
            self.comms.send(key, address, f"🚨 Escalated to DevOps: {reason}. {label}{where}")
            self.comms.post(key, f"🚨 Escalated to DevOps ({address}): {reason}")
        elif step.contact == Contact.SECURITY:
            self.comms.post(
                key,
                f"🔐 {address}: security incident, please assess (breach assessment, user notification). "
                f"{label}. Email: {slack.security_email}",
            )
            self.comms.rec.note(
                "escalate", f"security team to be emailed at {slack.security_email} (no mail integration)"
            )
        if step.page and not (step.contact == Contact.ONCALL and self.comms.paged()):
            action_key = "trigger" if step.contact == Contact.ONCALL else key
            summary = f"[{incident.severity}] {incident.title}"
            if step.contact != Contact.ONCALL:
                summary = (
                    f"[{incident.severity}] escalated to {step.contact.value} ({reason}): {incident.title}"
                )
            self.comms.page(
                action_key,
                "trigger",
                summary=summary,
                details={"incident": incident.id, "escalated_to": address, "reason": reason},
            )

    def run(self, stop: threading.Event) -> None:
        while True:
            _guarded("escalation check", self.comms.rec, self.tick)
            if stop.wait(self.poll_s):
                return


def next_update_text(interval_s: float) -> str:
    """How the thread opener announces the cadence: `every 5 minutes`, `every 0.2 s`."""
    return f"every {human_duration(timedelta(seconds=interval_s))}"


def wait_until(predicate: Callable[[], bool], deadline_s: float, poll_s: float) -> bool:
    """Poll `predicate` until true or the deadline passes (bounded); returns its last value."""
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() + poll_s > deadline:
            return predicate()
        time.sleep(poll_s)
    return True
