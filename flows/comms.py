"""Who is told, and how: the incident thread, the #alerts-critical acknowledgement and PagerDuty.

Usage (inside the `respond` flow)::

    comms = Comms(rec)                                    # rec: flows.record.Record of the incident
    comms.acknowledge_alert(text)                         # #alerts-critical
    comms.open_thread(text)                               # #incidents; the ts is stored on the incident
    comms.post("assessment", text)                        # a reply in the thread, once per key
    comms.page("trigger", "trigger", summary=...)         # PagerDuty, on the incident's one dedup_key

Rules kept here for every message and page:
- each is claimed once per incident in the store before it is sent (`Record.act`), so a retried or
  second run never posts or pages twice;
- Slack or PagerDuty failing never stops the response: the call is retried (tasks/slack.py,
  tasks/pagerduty.py), then recorded in the timeline as `undelivered`, and the caller goes on;
- every PagerDuty event of the incident carries its one `dedup_key` (stored on the incident);
- a run killed between claiming a message or page and finishing the claim leaves it to the run that
  takes over (flows/record.py, tasks/orphans.py): a message carries its claim in Slack metadata, so
  the new run looks in the thread and posts only when it is not there; a page is sent again on the
  same dedup_key (PagerDuty keeps one alert per dedup_key: at most a log entry on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flows.record import Record
from runbook.models import ActionRecord, Incident, action_key
from tasks import runtime
from tasks.pagerduty import EventAction, PagerDutyEvent, PagerDutyFailed, send_event
from tasks.pagerduty import trigger_page as trigger_page_task
from tasks.slack import SlackFailed, SlackMessage, find_tagged, send_message, tag
from tasks.slack import post_message as post_message_task

__all__ = ["ACK_KIND", "THREAD_KIND", "Comms"]

THREAD_KIND = "slack-thread"
ACK_KIND = "slack-ack"
CLOCK_SKEW_S = 60.0  # Slack's clock (a message's ts) may be behind ours: look this much further back


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
    def _send(self, channel: str, text: str, thread_ts: str | None, claim: str) -> SlackMessage:
        if self.tasks:
            return post_message_task(channel, text, thread_ts, metadata=tag(claim))
        return send_message(channel, text, thread_ts, metadata=tag(claim))

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
        target = f"{channel}:{key}"
        claim = action_key(self.rec.incident.id, "slack", target)

        def landed(orphan: ActionRecord) -> SlackMessage | None:
            """A run died sending it: is it in the thread (or channel)? Tagged with its claim (metadata)."""
            since = orphan.claimed_at.timestamp() - CLOCK_SKEW_S
            return find_tagged(channel, claim, thread_ts, since)

        done = self.rec.act(
            "slack",
            target,
            lambda: self._send(channel, text, thread_ts, claim),
            f"post to {where}: {text.splitlines()[0][:120]}",
            recover=landed,
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
