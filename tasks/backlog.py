"""The backlog and the fix schedule, behind a small interface: the incident store by default.

Usage (inside a flow; outside one call `.fn`)::

    item = BacklogItem.for_incident(incident, kind="fix", title="Fix: journal page slow",
                                    description="workaround: ...", due=next_window(now, "02:00"))
    entry = add_backlog_item(item)        # BacklogEntry(item=..., created=True, ref="store:...")
    add_backlog_item(item).created        # False: the same item (same key) is never added twice
    backlog().items(incident.id)          # what this incident put on the backlog

Guide: P3 "Schedule fix for non-critical window"; P4 "Add to backlog · Discuss in standup · Schedule in
next sprint"; Post-Mortem "within 24 hours".

`Backlog` is the interface (add, list). `StoreBacklog`, the default, keeps each item in the incident
store as an action record (`action="backlog"`, `target=item.key`, the item as JSON in `detail`) plus a
timeline entry, so adding is exactly-once under concurrent callers on both store backends, and the
item is visible wherever the incident is. A GitHub issue or ticket backend implements the same two
methods; `backlog()` is where one would be chosen from settings (none is configured today).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Literal, Protocol

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from runbook.models import ActionStatus, Incident, TimelineEntry, utc_now
from runbook.severity import Severity
from runbook.store import Store
from tasks import runtime

__all__ = [
    "Backlog",
    "BacklogEntry",
    "BacklogItem",
    "ItemKind",
    "StoreBacklog",
    "add_backlog_item",
    "backlog",
    "next_window",
]

ItemKind = Literal["fix", "backlog", "post-mortem", "follow-up"]


class BacklogItem(BaseModel):
    """One piece of work the response leaves behind."""

    key: str = Field(min_length=1, description="idempotency key, unique per incident")
    incident_id: str
    kind: ItemKind
    title: str = Field(min_length=1, max_length=300)
    description: str = ""
    severity: Severity
    service: str = "emotionscare"
    due: AwareDatetime | None = Field(None, description="when the work is scheduled (None: next sprint)")
    labels: list[str] = Field(default_factory=list)
    created_at: AwareDatetime = Field(default_factory=utc_now)

    @classmethod
    def for_incident(
        cls,
        incident: Incident,
        *,
        kind: ItemKind,
        title: str,
        description: str = "",
        due: datetime | None = None,
        labels: list[str] | None = None,
    ) -> BacklogItem:
        """An item of `kind` for `incident` (its key: the kind, so one of each kind per incident)."""
        return cls(
            key=kind,
            incident_id=incident.id,
            kind=kind,
            title=title,
            description=description,
            severity=incident.severity,
            service=incident.service,
            due=due,
            labels=[incident.severity.value, kind, *(labels or [])],
        )


class BacklogEntry(BaseModel):
    """The item as the backlog holds it: `created` False when it was already there."""

    item: BacklogItem
    created: bool
    ref: str = Field(description="where the item lives: 'store:<action key>', a URL, a ticket id")


class Backlog(Protocol):
    """Where work is scheduled: add an item (idempotent on `item.key` per incident), list an incident's."""

    def add(self, item: BacklogItem) -> BacklogEntry: ...

    def items(self, incident_id: str) -> list[BacklogItem]: ...


class StoreBacklog:
    """The default backlog: the incident store (see the module docstring)."""

    ACTION = "backlog"

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, item: BacklogItem) -> BacklogEntry:
        claim = self.store.claim_action(
            item.incident_id, self.ACTION, item.key, detail=item.model_dump_json()
        )
        ref = f"store:{claim.record.key}"
        if not claim.won:
            return BacklogEntry(item=_item(claim.record.detail) or item, created=False, ref=ref)
        self.store.finish_action(claim.record.key, ActionStatus.SUCCEEDED)
        when = f", scheduled for {item.due:%Y-%m-%d %H:%M} UTC" if item.due else ""
        self.store.append_timeline(
            item.incident_id,
            TimelineEntry(
                actor="backlog:store",
                kind="backlog",
                message=f"{item.kind} added to the backlog: {item.title}{when}",
                evidence={"ref": ref, "item": json.loads(item.model_dump_json())},
            ),
        )
        return BacklogEntry(item=item, created=True, ref=ref)

    def items(self, incident_id: str) -> list[BacklogItem]:
        found = (_item(a.detail) for a in self.store.list_actions(incident_id) if a.action == self.ACTION)
        return [i for i in found if i is not None]


def _item(detail: str | None) -> BacklogItem | None:
    if not detail:
        return None
    try:
        return BacklogItem.model_validate_json(detail)
    except ValidationError:
        return None


def backlog() -> Backlog:
    """The configured backlog (the incident store: no other backend is configured in settings)."""
    return StoreBacklog(runtime.store())


def next_window(
    now: datetime, window_utc: str = "02:00", *, min_lead: timedelta = timedelta(hours=1)
) -> datetime:
    """The next non-critical window: the next `HH:MM` UTC at least `min_lead` after `now`.

    `next_window(datetime(2025, 11, 14, 14, 8, tzinfo=UTC))` is 2025-11-15 02:00 UTC.
    Raises `ValueError` naming the parameter for a malformed time.
    """
    try:
        at = time.fromisoformat(window_utc)
    except ValueError:
        raise ValueError(f"window_utc: expected HH:MM (got {window_utc!r})") from None
    if at.tzinfo is not None:
        raise ValueError(f"window_utc: a UTC time without offset, HH:MM (got {window_utc!r})")
    if now.tzinfo is None:
        raise ValueError("now: must be timezone-aware")
    candidate = now.astimezone(UTC).replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    while candidate < now + min_lead:
        candidate += timedelta(days=1)
    return candidate


@task(name="add_backlog_item", cache_policy=NO_CACHE)
def add_backlog_item(item: BacklogItem) -> BacklogEntry:
    """Put `item` on the backlog (once: the same key for the same incident is never added twice)."""
    return backlog().add(item)
