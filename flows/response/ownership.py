"""One response per incident: the run claims `("respond", "lifecycle-N")` in the store.

Usage (in `respond`)::

    key, owner = claim_lifecycle(rec)              # (our claim, None) or (None, the run that has it)
    while owner is not None:                       # join: follow the incident, take over if its run ended
        joined = follow(rec, owner, deadline, poll_s)
        ...
    with lifecycle(key):                           # the claim is finished whatever happens
        result = ...                               # the response

A second `respond` for an open incident joins it (no second thread, no second page): it follows the
incident until it is resolved or its join timeout passes, and takes over (generation N+1) only if the
first run has ended without resolving it; every message, page and action being claimed once, a
takeover repeats none of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from prefect import get_client
from prefect.exceptions import ObjectNotFound

from flows.comms import Comms
from flows.flow_run import flow_run_id
from flows.record import Record
from runbook.errors import RunbookError
from runbook.models import ActionRecord, ActionStatus, IncidentStatus, RunbookOutcome, RunbookResult
from tasks import runtime

__all__ = ["TooManyResponses", "claim_lifecycle", "follow", "lifecycle", "run_active", "run_state"]


class TooManyResponses(RunbookError):
    """Every generation of the incident's response is taken: something restarts respond in a loop."""


def _read_state(run_id: str | None) -> Any:
    """The Prefect state of the flow run `run_id`; None if there is no such run (or no state)."""
    if run_id is None:
        return None
    try:
        with get_client(sync_client=True) as client:
            return client.read_flow_run(UUID(run_id)).state
    except (ObjectNotFound, ValueError):
        return None


def run_active(run_id: str | None) -> bool:
    """Whether the Prefect flow run `run_id` is still going (paused counts as going)."""
    state = _read_state(run_id)
    return state is not None and not state.is_final()


def run_state(run_id: str | None) -> str | None:
    """The Prefect state name of the flow run `run_id` ("Crashed", "Failed", ...); None if unknown."""
    state = _read_state(run_id)
    return None if state is None else str(state.name)


def _announce_takeover(rec: Record, n: int, before: ActionRecord | None) -> None:
    """Generation `n` took the incident over: say so, and why, in the timeline and the same thread."""
    why = (before.detail if before is not None else None) or "the earlier respond run ended"
    if before is not None and before.run_id and "ended" not in why:
        why = f"run {before.run_id} {run_state(before.run_id) or 'ended'}: {why}"
    rec.note("takeover", f"taking over the response (generation {n}): {why}", evidence={"generation": n})
    Comms(rec).post(
        f"takeover-{n}",
        f"🔁 Taking over this incident (response generation {n}): {why}. Actions already taken are not "
        "repeated; the response goes on from where it stopped.",
    )


def claim_lifecycle(rec: Record, generations: int = 1000) -> tuple[str | None, str | None]:
    """Claim the incident's response: (our claim's key, None), or (None, the run that has it).

    Each run claims `("respond", "lifecycle-N")`, N the first generation not finished: exactly one of
    concurrent runs wins it; the others join its owner. A generation whose run ended (resolved, left
    the incident open, or crashed: its claim is then marked failed) passes to the next.
    """
    store = runtime.store()
    mine = flow_run_id()
    before: ActionRecord | None = None
    for n in range(1, generations + 1):
        claim = store.claim_action(
            rec.incident.id, "respond", f"lifecycle-{n}", run_id=mine, detail="manages the response"
        )
        record = claim.record
        if claim.won or (mine is not None and record.run_id == mine):
            if n > 1 and claim.won:
                _announce_takeover(rec, n, before)
            return record.key, None
        if record.status == ActionStatus.CLAIMED:
            if run_active(record.run_id):
                return None, record.run_id
            state = run_state(record.run_id) or "gone"
            record = store.finish_action(
                record.key, ActionStatus.FAILED, f"run {record.run_id} ended {state} without finishing"
            )
        before = record
    raise TooManyResponses(f"incident {rec.incident.id}: more than {generations} respond runs")


def follow(rec: Record, owner: str, deadline: float, poll_s: float) -> RunbookResult | None:
    """Follow the incident until resolved (a result), the owner ends (None: take over) or the deadline."""
    store = runtime.store()
    while True:
        incident = store.get_incident(rec.incident.id, with_timeline=False)
        if not incident.is_open:
            return rec.finish(RunbookOutcome.RECOVERED, f"joined: resolved by respond run {owner}")
        if not run_active(owner):
            return None
        if time.monotonic() + poll_s > deadline:
            outcome = (
                RunbookOutcome.MITIGATED
                if incident.status == IncidentStatus.MITIGATED
                else RunbookOutcome.ESCALATED
            )
            return rec.finish(
                outcome, f"joined: respond run {owner} is handling it (status {incident.status})"
            )
        time.sleep(poll_s)


@contextmanager
def lifecycle(rec: Record, key: str | None) -> Iterator[None]:
    """The response holding claim `key` (None: a dry run, nothing claimed): finished whatever happens,
    failed when the response raises (a takeover then starts the next generation)."""
    store = runtime.store()
    try:
        yield
    except BaseException as exc:
        if key is not None:
            store.finish_action(key, ActionStatus.FAILED, f"the respond run failed: {type(exc).__name__}")
        raise
    if key is not None:
        still_open = store.get_incident(rec.incident.id, with_timeline=False).is_open
        store.finish_action(
            key, ActionStatus.SUCCEEDED, "ended with the incident open" if still_open else "resolved"
        )
