"""Guide: Communication During Incident › Status Updates: what the updates say (`Board`) and when they are
posted (`StatusUpdates`, every 5-10 minutes in the incident thread while the incident is open).

Usage::

    board = Board(title=incident.title)
    board.doing("Rolling back (service-down)"); board.done("Rolled back")
    with background(StatusUpdates(comms.detached(), board, interval_s=300, anchor=thread_opened_at)):
        ...
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flows.background import guarded
from flows.comms import Comms
from runbook.messages import ActionLine, StatusUpdate, render_status_update
from runbook.models import utc_now
from tasks.slack import SlackMessage

__all__ = ["Board", "StatusUpdates"]


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

    def _post_if_open(self, slot: int, now: datetime) -> None:
        if self.comms.incident.is_open:  # read from the store: inside the guard, it may be down
            self.post(slot, now)

    def run(self, stop: threading.Event) -> None:
        last = 0
        while True:
            now = utc_now()
            slot = self.due_slot(now)
            if slot > last:
                last = slot
                guarded("status update", self.comms.rec, lambda: self._post_if_open(slot, now))  # noqa: B023
            wait = (self.anchor + timedelta(seconds=(last + 1) * self.interval_s) - utc_now()).total_seconds()
            if stop.wait(max(0.0, wait)):
                return
