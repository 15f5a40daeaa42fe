"""The sweeper: an open incident always has a live response, and its escalations fire on time.

Usage (`python -m intake` runs one beside the dispatcher; tests call `run_once`)::

    sweeper = Sweeper(store, api_url, SweepSettings())
    with sweeper:                      # a background thread: one pass every `interval_s`
        ...
    report = sweeper.run_once()        # one pass by hand: Swept(taken_over=[...], escalated=[...])

Each pass does two things (docs/operating.md §8):

1. **Takeover.** For every open incident whose `respond` run (`incidents.flow_run_id`) is in a final
   state in Prefect (Crashed: the zombie automation of flows/automations.py; Failed; Cancelled) and did
   not end normally (its lifecycle claim `("respond", "lifecycle-N")` finished `succeeded`: handed over
   to people, or a P3/P4 left open on purpose), start a new `respond` run for the incident. Once per
   dead run: the claim `("takeover", <dead run id>)` in the store has one winner among all intake
   replicas, and the run is created with its own idempotency key
   (`respond/respond:<incident>:after-<dead run id>`), so a retried creation returns the same run. The
   new run claims the next lifecycle generation (flows/response/ownership.py), says in the thread that
   it took over and why, and repeats none of the claimed actions. At most `max_takeovers` per incident
   (a response that fails every time is not restarted for ever: the timeline says so).
2. **Overdue escalations.** `respond`'s escalation watch stores each step of the chain with the
   incident (`escalation_deadlines`, with what firing it sends). A step still unfired `grace_s` after
   it was due (its run is dead, or not yet known dead) is fired here: the claim `("escalate", "P1:lead")`
   is the one the watch takes, so each step fires exactly once whoever fires it; each Slack message and
   PagerDuty event keeps its own claim (`("slack", ...)`, `("pagerduty", ...)`) as in flows/comms.py.
   An acknowledgement stored on the incident settles the steps it cancels. A step (or one of its
   messages or pages) that a `respond` run claimed and died before finishing is taken over here
   (tasks/orphans.py): each message is looked for in Slack by the claim in its metadata and posted only
   when missing; a page is sent again on the incident's dedup_key (PagerDuty keeps one alert). The same
   for what a sweeper claimed and never finished (its intake process died mid-send): its claims carry no
   run to ask about, so they are taken over once older than any send takes (`unowned_stale_s` in
   tasks/orphans.py, 4 min by default); until every notice of a step is settled the step stays unfired.
   Reactions in Slack are read by `respond` only: while no `respond` is alive, an acknowledgement by
   reaction is seen by the next generation.

Why here and not a Prefect automation on the Crashed event: one watcher for both jobs (escalation needs
a clock that keeps running while no run is alive, which an event trigger is not), the same check for
Crashed, Failed and Cancelled, the incident's state (open or not) read where it lives, and it works
whatever runs `respond` (warm runner, `flow.serve`, a worker's Job). It needs only the store and the
Prefect API, as the dispatcher does. Not through the outbox row: that row is one per incident and its
idempotency key names the incident, so Prefect would hand back the dead run.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings

from intake.starter import respond_parameters
from runbook.errors import RunbookError, SettingsError
from runbook.models import ActionRecord, ActionStatus, Incident, TimelineEntry, action_key, utc_now
from runbook.settings.fields import env_config
from runbook.store import Claim, Deadline, Store

__all__ = ["ACTOR", "SweepSettings", "Sweeper", "Swept", "load_sweep_settings"]

ACTOR = "intake:sweep"
ENV_PREFIX = "RUNBOOK_SWEEP_"
THREAD_KIND = "slack-thread"  # flows/comms.py: the timeline entry that holds the thread's channel and ts
LIFECYCLE = "lifecycle-"
CLOCK_SKEW_S = 60.0  # flows/comms.py: look this much before a dead run's claim for its message

log = logging.getLogger("intake.sweep")


class SweepSettings(BaseSettings):
    """How often the sweeper looks, and how patient it is (RUNBOOK_SWEEP_*)."""

    model_config = env_config(ENV_PREFIX)

    enabled: bool = Field(True, description="run the sweeper beside the dispatcher")
    interval_s: float = Field(5.0, gt=0, le=300, description="seconds between passes")
    grace_s: float = Field(
        30.0, ge=0, le=3600, description="an escalation step unfired this long after due is fired here"
    )
    max_takeovers: int = Field(5, ge=0, le=100, description="takeovers per incident, at most")
    stale_s: float = Field(
        60.0, gt=0, le=3600, description="a takeover claimed this long ago and not started is retried"
    )
    deployment: str = Field("respond/respond", min_length=3, description="the deployment a takeover starts")


def load_sweep_settings(*, env_file: str | None = ".env", **overrides: Any) -> SweepSettings:
    """The settings; `SettingsError` with one line naming the variable when invalid."""
    try:
        return SweepSettings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = "_".join(str(part) for part in first.get("loc", ()))
        raise SettingsError(
            f"{ENV_PREFIX}{loc.upper()}: {first.get('msg', 'invalid')} (got {first.get('input')!r})"
        ) from exc


@dataclass
class Swept:
    """What one pass did: (incident, dead run, new run) per takeover; (incident, step) per escalation."""

    taken_over: list[tuple[str, str, str]] = field(default_factory=list)
    escalated: list[tuple[str, str]] = field(default_factory=list)


class Sweeper:
    """Takeovers and overdue escalations (see the module docstring); a background thread or by hand."""

    def __init__(self, store: Store, api_url: str | None, settings: SweepSettings | None = None) -> None:
        self.store = store
        self.api_url = api_url
        self.settings = settings or SweepSettings()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread -------------------------------------------------------------------------------
    def __enter__(self) -> Sweeper:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="intake-sweeper", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the next pass tries again: the sweeper must not die silently
                log.exception("sweeper: pass failed")
            self._stop.wait(self.settings.interval_s)

    # -- one pass ---------------------------------------------------------------------------------
    def run_once(self) -> Swept:
        swept = Swept()
        self._takeovers(swept)
        self._escalations(swept)
        return swept

    def _client(self) -> Any:
        from prefect.client.orchestration import SyncPrefectClient, get_client

        if self.api_url:
            return SyncPrefectClient(self.api_url)
        return get_client(sync_client=True)

    def _takeovers(self, swept: Swept) -> None:
        candidates = [i for i in self.store.list_incidents(open_only=True, limit=1000) if i.flow_run_id]
        if not candidates:
            return
        with self._client() as client:
            for incident in candidates:
                try:
                    done = self._take_over(client, incident)
                except Exception:
                    log.exception("sweeper: takeover of incident %s failed; next pass retries", incident.id)
                    continue
                if done is not None:
                    swept.taken_over.append(done)

    def _state(self, client: Any, run_id: str) -> Any:
        from prefect.exceptions import ObjectNotFound

        try:
            return client.read_flow_run(UUID(run_id)).state
        except (ObjectNotFound, ValueError):
            return None

    def _take_over(self, client: Any, incident: Incident) -> tuple[str, str, str] | None:
        dead = str(incident.flow_run_id)
        state = self._state(client, dead)
        if state is None or not state.is_final():
            return None
        actions = self.store.list_actions(incident.id)
        lifecycles = [a for a in actions if a.action == "respond" and a.target.startswith(LIFECYCLE)]
        if any(a.run_id == dead and a.status == ActionStatus.SUCCEEDED for a in lifecycles):
            return None  # ended normally with the incident open (handed over, a P3 scheduled): not dead
        for other in lifecycles:  # a run started by hand may hold the response: it is alive
            if other.status == ActionStatus.CLAIMED and other.run_id not in (None, dead):
                found = self._state(client, other.run_id or "")
                if found is not None and not found.is_final():
                    return None
        takeovers = [a for a in actions if a.action == "takeover"]
        if len(takeovers) >= self.settings.max_takeovers:
            self._give_up(incident, dead, len(takeovers))
            return None
        why = f"respond run {dead} ended {state.name} with the incident open"
        claim = self.store.claim_action(incident.id, "takeover", dead, detail=why, retry_failed=True)
        if not claim.won:
            age = (utc_now() - claim.record.claimed_at).total_seconds()
            if claim.record.status == ActionStatus.CLAIMED and age > self.settings.stale_s:
                self.store.finish_action(claim.record.key, ActionStatus.FAILED, "stale: retried")
            return None
        try:
            deployment = client.read_deployment_by_name(self.settings.deployment)
            run = client.create_flow_run_from_deployment(
                deployment.id,
                parameters=respond_parameters(incident),
                tags=["intake", "takeover"],
                idempotency_key=f"{self.settings.deployment}:{incident.id}:after-{dead}",
            )
        except Exception as exc:
            self.store.finish_action(
                claim.record.key, ActionStatus.FAILED, f"{type(exc).__name__}: {exc}"[:500]
            )
            raise
        new = str(run.id)
        self.store.update_incident(incident.id, flow_run_id=new)
        self.store.append_timeline(
            incident.id,
            TimelineEntry(
                actor=ACTOR,
                kind="takeover",
                message=f"{why}: respond run {new} started to take it over",
                evidence={"dead_run": dead, "state": state.name, "flow_run_id": new},
            ),
        )
        self.store.finish_action(claim.record.key, ActionStatus.SUCCEEDED, f"{why}: started {new}")
        log.warning("sweeper: incident %s: %s; started respond run %s", incident.id, why, new)
        return incident.id, dead, new

    def _give_up(self, incident: Incident, dead: str, count: int) -> None:
        claim = self.store.claim_action(incident.id, "takeover", "limit", detail=f"{count} takeovers")
        if claim.won:
            self.store.append_timeline(
                incident.id,
                TimelineEntry(
                    actor=ACTOR,
                    kind="takeover",
                    message=f"respond run {dead} ended with the incident open, after {count} takeovers: "
                    "not starting another (RUNBOOK_SWEEP_MAX_TAKEOVERS); a person must take it",
                ),
            )
            self.store.finish_action(claim.record.key, ActionStatus.SUCCEEDED)

    # -- escalations ------------------------------------------------------------------------------
    def _escalations(self, swept: Swept) -> None:
        for deadline in self.store.due_deadlines(utc_now(), self.settings.grace_s):
            try:
                if self._fire(deadline):
                    swept.escalated.append((deadline.incident_id, deadline.key))
            except Exception:
                log.exception("sweeper: escalation %s of %s failed", deadline.key, deadline.incident_id)

    def _fire(self, deadline: Deadline) -> bool:
        incident = self.store.get_incident(deadline.incident_id)
        now = utc_now()
        if deadline.unacknowledged_only and incident.acknowledged_at is not None:
            self.store.mark_fired(incident.id, deadline.key, "not needed: acknowledged", now)
            return False
        late = human_late(now - deadline.due_at)
        claim = self.store.claim_action(
            incident.id, "escalate", deadline.key, detail=f"fired by intake's sweeper, {late} late"
        )
        if not claim.won:
            # A respond run killed while firing it: ours now (each message and page is looked for first).
            claim = self._adopt(claim) or claim
        if not claim.won:
            if claim.record.status != ActionStatus.CLAIMED:  # the watch did it (or tried): settled
                self.store.mark_fired(incident.id, deadline.key, claim.record.run_id or "respond", now)
            return False
        self._note(
            incident, "action", f"escalate {deadline.key}: due {late} ago and no live respond fired it"
        )
        pending = [n["key"] for n in deadline.notices if not self._send(incident, n)]
        if pending:
            # A notice another holder still claims (a live run, or a sweeper that died too recently to
            # tell): the step stays claimed by us, unfired; once stale it is taken over again and the
            # notices sent are refused as done, so each is sent once.
            log.warning("sweeper: escalation %s of %s waits for %s", deadline.key, incident.id, pending)
            return False
        self.store.finish_action(claim.record.key, ActionStatus.SUCCEEDED, f"fired by {ACTOR}")
        self.store.mark_fired(incident.id, deadline.key, ACTOR, utc_now())
        return True

    def _send(self, incident: Incident, notice: dict[str, Any]) -> bool:
        """One notice as flows/escalation.py renders it, claimed as flows/comms.py claims it; False while
        another holder's claim on it is unfinished."""
        from tasks import runtime
        from tasks.pagerduty import PagerDutyFailed, send_event
        from tasks.slack import SlackFailed, find_tagged, send_message, tag

        kind = notice["kind"]
        if kind == "note":
            self._note(incident, "escalate", notice["text"])
            return True
        if kind in ("post", "send"):
            channel, ts = notice.get("channel"), None
            if kind == "post":
                channel, ts = self._thread_of(incident, runtime.settings().slack.incidents_channel)
            target = f"{channel}:{notice['key']}"
            key = action_key(incident.id, "slack", target)

            def run() -> Any:
                return send_message(str(channel), notice["text"], ts, metadata=tag(key))

            def landed(orphan: ActionRecord) -> Any:
                since = orphan.claimed_at.timestamp() - CLOCK_SKEW_S
                return find_tagged(str(channel), key, ts, since)

            return self._once(incident, "slack", target, run, SlackFailed, landed)
        if kind == "page":
            dedup = incident.pagerduty_dedup_key or incident.id
            if not incident.pagerduty_dedup_key:
                self.store.update_incident(incident.id, pagerduty_dedup_key=dedup)

            def page() -> Any:
                return send_event(
                    "trigger",
                    dedup,
                    summary=notice["summary"],
                    source=incident.service,
                    details=notice.get("details"),
                )

            return self._once(incident, "pagerduty", f"{dedup}:{notice['key']}", page, PagerDutyFailed)
        return True

    def _adopt(self, claim: Claim) -> Claim | None:
        """The claim, ours, when a dead run left it unfinished (tasks/orphans.py); else None."""
        from tasks.orphans import adopt_orphan

        adopted = adopt_orphan(claim.record, None, self.api_url)
        return adopted if adopted is not None and adopted.won else None

    def _once(
        self,
        incident: Incident,
        action: str,
        target: str,
        run: Any,
        failure: type[RunbookError],
        landed: Any = None,
    ) -> bool:
        """Claimed once, as flows/comms.py claims it; a claim a dead run left unfinished is taken over:
        a message is looked for first (`landed`), a page sent again on its dedup_key. False while another
        holder's claim is unfinished (a live run, or too young to tell); True once settled."""
        claim = self.store.claim_action(incident.id, action, target, detail=f"sent by {ACTOR}")
        if not claim.won:
            orphan = claim.record  # as the dead holder left it: its claimed_at bounds the search
            adopted = self._adopt(claim)
            if adopted is None:
                return orphan.status != ActionStatus.CLAIMED
            claim = adopted
            try:
                found = landed(orphan) if landed is not None else None
            except failure as exc:
                self.store.finish_action(
                    claim.record.key, ActionStatus.FAILED, f"could not tell whether it was sent: {exc}"[:500]
                )
                return True
            if found is not None:
                self.store.finish_action(
                    claim.record.key, ActionStatus.SUCCEEDED, "found sent: not sent again"
                )
                self._note(
                    incident, "takeover", f"{action} {target}: found sent by the dead run: not sent again"
                )
                return True
        try:
            run()
        except failure as exc:
            self.store.finish_action(claim.record.key, ActionStatus.FAILED, str(exc)[:500])
            self._note(incident, "undelivered", f"{action} {target} not delivered: {exc}")
            return True
        self.store.finish_action(claim.record.key, ActionStatus.SUCCEEDED)
        return True

    @staticmethod
    def _thread_of(incident: Incident, default_channel: str) -> tuple[str, str | None]:
        """(channel, ts) of the incident thread as flows/comms.py stored it; the channel alone if none."""
        if not incident.slack_thread_ts:
            return default_channel, None
        channel = default_channel
        for entry in incident.timeline:
            if (
                entry.kind == THREAD_KIND
                and entry.evidence
                and entry.evidence.get("ts") == incident.slack_thread_ts
            ):
                channel = str(entry.evidence.get("channel") or channel)
        return channel, incident.slack_thread_ts

    def _note(self, incident: Incident, kind: str, message: str) -> None:
        self.store.append_timeline(incident.id, TimelineEntry(actor=ACTOR, kind=kind, message=message))


def human_late(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
