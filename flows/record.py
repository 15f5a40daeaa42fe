"""The record a runbook keeps while it runs: timeline, evidence, and every action claimed before it runs.

Usage (inside a flow)::

    rec = Record.open("service-down", incident_ref, dry_run=dry_run)
    rec.note("assess", "infrastructure: GET /health refused")
    rec.add_evidence(Evidence(kind="logs", title="last 100 lines", content=...))
    done = rec.act("rollback", "prod/deployment/emotionscare", lambda: undo(...), plan="undo to revision 1")
    if done.refused: ...        # another run of this incident already did it: we never act twice
    return rec.finish(RunbookOutcome.ROLLED_BACK, "rolled back to revision 1")

Safety rules kept here, in one place, for every flow:
- an action is claimed in the store under (incident, action, target) **before** it runs; a second
  claim (a retried flow, a duplicate alert, a second copy running at once) is refused and recorded;
  a claim left unfinished by a run that is now dead (killed mid-call) is taken over by one run, which
  looks at the world first (tasks/orphans.py): found done → not done again; else done now;
- with `dry_run`, the plan is recorded and logged, and nothing runs;
- before each write the automation switch is read afresh (flows/switch.py): `auto` acts, `approve`
  asks a person first (no yes in time → not done, the runbook escalates), `observe` turns the run into
  a dry run from there on; every action's timeline note (so the artifact too) and the outcome name
  the mode that decided;
- an action with a budget per target (rollback, scale, reset-db-pool: `runbook.policy.BUDGETED`) over
  its budget waits for a person's yes first (no yes in time → not done, the runbook escalates);
- a dry run started by hand works on an incident of its own (never joined by a real run) and resolves
  it when it finishes: it leaves no incident open;
- every step lands in the incident's timeline as it happens, so a crash leaves the story so far;
- `open` binds the incident's service for the rest of the flow run (tasks/runtime.py): the run's
  targets are that service's, never the process-wide settings' nor another catalogued service's;
- the result is also published as a markdown artifact on the flow run (the UI's Artifacts tab).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext

from flows.flow_run import artifact_key, flow_run_id
from flows.guards import over_budget
from flows.switch import TELLS_PEOPLE, before_write
from runbook.models import (
    ActionRecord,
    ActionStatus,
    Alert,
    AlertSource,
    Evidence,
    Incident,
    IncidentRef,
    IncidentStatus,
    RunbookOutcome,
    RunbookResult,
    TimelineEntry,
    new_id,
    utc_now,
)
from runbook.switch import Decision, Mode
from tasks import runtime
from tasks.orphans import REDO_SAFE, adopt_orphan

__all__ = ["ActDone", "Record", "SwitchStopped"]

T = TypeVar("T")


class SwitchStopped(RuntimeError):
    """The automation switch (approve mode) stopped a write: nobody approved it. Nothing was done."""


@dataclass
class ActDone(Generic[T]):
    """What became of one requested action."""

    record: ActionRecord
    value: T | None = None
    error: BaseException | None = None

    @property
    def ran(self) -> bool:
        return self.record.status in (ActionStatus.SUCCEEDED, ActionStatus.FAILED)

    @property
    def ok(self) -> bool:
        return self.record.status == ActionStatus.SUCCEEDED

    @property
    def refused(self) -> bool:
        return self.record.status == ActionStatus.REFUSED

    @property
    def dry_run(self) -> bool:
        return self.record.status == ActionStatus.DRY_RUN


def open_incident(ref: IncidentRef, runbook: str, dry_run: bool = False) -> Incident:
    """The incident a run works on: the one named, or (started by hand) the open one for this
    service and runbook, or a new one. Two hand-started runs of one runbook for one service thus
    share an incident, and so share its action claims: they cannot both roll back. A dry run started by
    hand gets an incident of its own (no real run joins it; it is resolved when the dry run finishes)."""
    store = runtime.store()
    if ref.incident_id:
        found = store.get_incident(ref.incident_id)
        if found is None:
            raise ValueError(f"incident: no incident with id {ref.incident_id!r}")
        return found
    alert = Alert(
        source=AlertSource.MANUAL,
        fingerprint=f"dry-run:{ref.service}:{runbook}:{flow_run_id() or new_id()}"
        if dry_run
        else f"manual:{ref.service}:{runbook}",
        name=runbook,
        service=ref.service,
        annotations={"summary": ref.summary or f"{runbook} started by hand"},
    )
    incident, _created = store.open_incident_for(alert, ref.severity, "manual", runbook)
    return incident


@dataclass
class Record:
    runbook: str
    incident: Incident
    dry_run: bool = False
    by_hand: bool = False
    started_at: Any = field(default_factory=utc_now)
    timeline: list[TimelineEntry] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    observed_by: Decision | None = None  # the switch turned this run into a dry run (mode observe)

    @classmethod
    def open(cls, runbook: str, ref: IncidentRef, dry_run: bool = False) -> Record:
        incident = open_incident(ref, runbook, dry_run)
        # From here on this flow run works on the incident's service, and on nothing else: every target
        # (probes, its cluster and Deployment, database, APIs, channels) is read from its catalogue entry.
        runtime.bind(incident.service)
        rec = cls(runbook=runbook, incident=incident, dry_run=dry_run, by_hand=ref.incident_id is None)
        mode = " (dry run: nothing will be changed)" if dry_run else ""
        rec.note("start", f"{runbook} started for incident {rec.incident.id} ({rec.incident.severity}){mode}")
        return rec

    @property
    def actor(self) -> str:
        return f"runbook:{self.runbook}"

    # -- the story ------------------------------------------------------------------------------
    def note(self, kind: str, message: str, evidence: dict[str, Any] | None = None) -> TimelineEntry:
        entry = TimelineEntry(actor=self.actor, kind=kind, message=message, evidence=evidence)
        self.timeline.append(entry)
        runtime.store().append_timeline(self.incident.id, entry)
        get_run_logger().info("[%s] %s", kind, message)
        return entry

    def add_evidence(self, item: Evidence) -> Evidence:
        self.evidence.append(item)
        return item

    # -- acting, once ---------------------------------------------------------------------------
    def act(
        self,
        action: str,
        target: str,
        run: Callable[[], T],
        plan: str,
        recover: Callable[[ActionRecord], T | None] | None = None,
    ) -> ActDone[T]:
        """Claim (incident, action, target) then run; refused if claimed before; a plan in a dry run.

        A claim a dead run left unfinished (tasks/orphans.py) is taken over instead of refused when the
        world can tell whether the action happened: `recover(orphan)` returns what it finds (then not
        run again) or None (then run); without `recover`, only the actions of `REDO_SAFE` are run again.
        """
        store = runtime.store()
        if self.dry_run:
            how = f"{self.observed_by.label()}: planned, not done" if self.observed_by else "dry run"
            return self._planned(action, target, plan, how)
        label = ""
        if action not in TELLS_PEOPLE:
            # The switch, read fresh right before this write (after any wait): auto / approve / observe.
            gate = before_write(self.incident.service, f"{action} {target}: {plan}", self.note)
            label = f"{gate.decision.label()}: "
            if gate.stopped is not None:
                return self._stopped(action, target, plan, gate.stopped)
            if gate.observe:
                # From here on the run is a dry run: later steps must not assume this change was made.
                self.dry_run, self.observed_by = True, gate.decision
                return self._planned(action, target, plan, f"{label}planned, not done")
            if gate.decision.mode is not Mode.APPROVE:  # a person who approved this write saw the plan
                # The budget per target (flows/guards.py): over it, a person says yes first, or nothing happens.
                over = over_budget(self, action, target, plan)
                if over is not None:
                    return self._stopped(action, target, plan, f"{label}{over}")
        claim = store.claim_action(self.incident.id, action, target, run_id=flow_run_id(), detail=plan)
        if not claim.won and (recover is not None or action in REDO_SAFE):
            adopted = adopt_orphan(claim.record, flow_run_id())
            if adopted is not None and adopted.won:
                return self._resume(action, target, run, plan, claim.record, recover)
        if not claim.won:
            prior = claim.record
            refused = prior.model_copy(update={"status": ActionStatus.REFUSED})
            self.actions.append(refused)
            self.note(
                "refused",
                f"not acting: {action} on {target} was already claimed for this incident at "
                f"{prior.claimed_at:%H:%M:%S} UTC (status {prior.status}, run {prior.run_id})",
            )
            return ActDone(refused)
        self.note("action", f"{label}{action} {target}: {plan}")
        return self._run(action, target, run, plan, claim.record.key)

    def _run(self, action: str, target: str, run: Callable[[], T], plan: str, key: str) -> ActDone[T]:
        """Run the claimed action and record how it ended."""
        store = runtime.store()
        try:
            value = run()
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"[:500]
            finished = store.finish_action(key, ActionStatus.FAILED, detail)
            self.actions.append(finished)
            self.note("action-failed", f"{action} {target} failed: {detail}")
            return ActDone(finished, error=exc)
        finished = store.finish_action(key, ActionStatus.SUCCEEDED, plan)
        self.actions.append(finished)
        return ActDone(finished, value=value)

    def _resume(
        self,
        action: str,
        target: str,
        run: Callable[[], T],
        plan: str,
        orphan: ActionRecord,
        recover: Callable[[ActionRecord], T | None] | None,
    ) -> ActDone[T]:
        """A dead run claimed this action and never finished it; the claim is ours now. Look at the world
        first (`recover`): found → recorded as done, not done again; else run it (`REDO_SAFE` says why
        running it again cannot act twice)."""
        when = f"{orphan.claimed_at:%H:%M:%S} UTC"
        self.note(
            "takeover",
            f"{action} {target} was claimed at {when} by run {orphan.run_id}, which ended before finishing it: "
            + ("looking whether it happened" if recover is not None else f"redone ({REDO_SAFE[action]})"),
            evidence={"claimed_by": orphan.run_id, "action": action, "target": target},
        )
        if recover is not None:
            try:
                found = recover(orphan)
            except Exception as exc:  # cannot tell whether it happened: not done again (never twice)
                detail = f"could not tell whether it happened: {type(exc).__name__}: {exc}"[:500]
                finished = runtime.store().finish_action(orphan.key, ActionStatus.FAILED, detail)
                self.actions.append(finished)
                self.note("action-failed", f"{action} {target}: {detail}")
                return ActDone(finished, error=exc)
            if found is not None:
                detail = f"found done after run {orphan.run_id} ended: {plan}"[:500]
                finished = runtime.store().finish_action(orphan.key, ActionStatus.SUCCEEDED, detail)
                self.actions.append(finished)
                self.note("takeover", f"{action} {target}: it had happened; not done again")
                return ActDone(finished, value=found)
            self.note("takeover", f"{action} {target}: it had not happened; doing it now")
        return self._run(action, target, run, plan, orphan.key)

    def _planned(self, action: str, target: str, plan: str, why: str) -> ActDone[Any]:
        """A dry run's (or the switch's `observe`) action: the plan recorded, nothing run, nothing claimed."""
        record = ActionRecord(
            key=f"{self.incident.id}:{action}:{target}:dry-run",
            incident_id=self.incident.id,
            action=action,
            target=target,
            status=ActionStatus.DRY_RUN,
            run_id=flow_run_id(),
            detail=f"{why}: {plan}" if self.observed_by else plan,
            finished_at=utc_now(),
        )
        self.actions.append(record)
        self.note("plan", f"{why}: would {action} {target}: {plan}")
        return ActDone(record)

    def _stopped(self, action: str, target: str, plan: str, why: str) -> ActDone[Any]:
        """The switch (approve mode) let nobody say yes: nothing claimed, nothing run; the runbook sees a
        failed action (`SwitchStopped`) and escalates, as for any write that did not happen."""
        record = ActionRecord(
            key=f"{self.incident.id}:{action}:{target}:stopped",
            incident_id=self.incident.id,
            action=action,
            target=target,
            status=ActionStatus.FAILED,
            run_id=flow_run_id(),
            detail=f"{why}: {plan}",
            finished_at=utc_now(),
        )
        self.actions.append(record)
        self.note("stopped", f"{why}: {action} {target} not done; escalate to a person")
        return ActDone(record, error=SwitchStopped(why))

    # -- the end --------------------------------------------------------------------------------
    def finish(self, outcome: RunbookOutcome, summary: str) -> RunbookResult:
        if self.dry_run and outcome not in (RunbookOutcome.RECOVERED_BY_ITSELF, RunbookOutcome.FAILED):
            how = f"{self.observed_by.label()}: planned, not done" if self.observed_by else "dry run"
            summary = f"{how}, planned outcome {outcome.value}: {summary}"
            outcome = RunbookOutcome.DRY_RUN
        # The outcome as data too: a generation that takes the incident over reads it (flows/response/verify.py).
        self.note(
            "outcome", f"{outcome.value}: {summary}", evidence={"outcome": outcome.value, "summary": summary}
        )
        if self.by_hand and self.dry_run and not self.observed_by:
            # A dry run's own incident (open_incident): its plan is recorded, nothing is left open.
            runtime.store().set_status(
                self.incident.id,
                IncidentStatus.RESOLVED,
                utc_now(),
                self.actor,
                f"dry run finished: {summary}",
            )
        elif self.by_hand and not self.dry_run and outcome in _RESOLVES_BY_HAND:
            # Started by hand, nobody else follows this incident (respond resolves the ones it runs):
            # verified healthy closes it, so a later outage by hand is a new incident with its own
            # claims. Escalated or mitigated ones stay open; a later run joins them and cannot act twice.
            runtime.store().set_status(
                self.incident.id, IncidentStatus.RESOLVED, utc_now(), self.actor, f"resolved: {summary}"
            )
        result = RunbookResult(
            runbook=self.runbook,
            incident_id=self.incident.id,
            outcome=outcome,
            summary=summary,
            actions=self.actions,
            evidence=self.evidence,
            timeline=self.timeline,
            started_at=self.started_at,
            finished_at=utc_now(),
        )
        if FlowRunContext.get() is not None:
            create_markdown_artifact(
                key=artifact_key(f"{self.runbook}-{self.incident.id[:12]}"),
                markdown=render_markdown(result),
                description=f"{self.runbook}: {outcome.value}",
            )
        return result


_RESOLVES_BY_HAND = (RunbookOutcome.RECOVERED, RunbookOutcome.ROLLED_BACK, RunbookOutcome.RECOVERED_BY_ITSELF)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(result: RunbookResult) -> str:
    """The run as a person reads it: outcome, timeline, actions, evidence."""
    lines = [
        f"# {result.runbook}: {result.outcome.value}",
        "",
        f"**Incident** `{result.incident_id}` · **Summary** {result.summary}",
        "",
        "## Timeline",
        "",
        "| time (UTC) | step | what |",
        "|---|---|---|",
    ]
    lines += [f"| {e.at:%H:%M:%S} | {e.kind} | {_cell(e.message)} |" for e in result.timeline]
    lines += ["", "## Actions", ""]
    if result.actions:
        lines += ["| action | target | status | detail |", "|---|---|---|---|"]
        lines += [
            f"| {a.action} | {_cell(a.target)} | {a.status.value} | {_cell(a.detail or '')} |"
            for a in result.actions
        ]
    else:
        lines.append("None.")
    lines += ["", "## Evidence", ""]
    for item in result.evidence:
        lines += [f"### {item.title} ({item.kind})", "", "```", item.content.rstrip() or "(empty)", "```", ""]
    if not result.evidence:
        lines.append("None collected.")
    return "\n".join(lines) + "\n"
