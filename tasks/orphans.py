"""Claims a dead run left started but unfinished: who may take them over, and which may simply be redone.

Usage (flows/record.py's `Record.act`, intake/sweep.py)::

    claim = store.claim_action(incident_id, action, target, run_id=mine)
    if not claim.won:
        adopted = adopt_orphan(claim.record, mine)     # None: the holder is alive (or unknown): refused
        if adopted is not None and adopted.won:
            ...   # ours now: ask the world whether it happened (Slack: our tagged message in the thread),
                  # or redo it when redoing is safe (`REDO_SAFE`), then finish the claim

A run killed (`kill -9`, a lost node) between claiming an action and finishing it leaves the claim
`claimed` by a run that will never finish it. Such a claim is an **orphan** when its run is over in
Prefect: the run, or one of the runs above it (a subflow of a killed `respond` stays Running in Prefect
while its parent is Crashed), is in a final state, or is gone. Only then may another run take the claim
over (`Store.adopt_action`: one conditional UPDATE, one winner); a claim whose run is alive is never
taken. A claim no run holds (intake's sweeper claims with no run id) has no run to ask about: it is an
orphan once it is older than any live send can take (`unowned_stale_s`, ~4 min by default), because a
sweeper killed mid-send leaves it `claimed` for ever otherwise (a message or page nobody sends). Taking
it over does not mean doing it again: the caller first looks at the world.

`REDO_SAFE` names the actions whose call itself looks at the world first, so that making it again after
a takeover cannot act twice; any other action is looked for by the caller (a Slack message, by the
metadata it carries) or stays refused, as before.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from runbook.models import ActionRecord, ActionStatus, utc_now
from runbook.store import Claim
from tasks import runtime
from tasks.retry import RETRY, backoff_scale

__all__ = ["REDO_SAFE", "adopt_orphan", "run_ended", "unowned_stale_s"]

REDO_SAFE: dict[str, str] = {
    "pagerduty": "PagerDuty Events API v2 deduplicates by dedup_key: a second trigger on the open alert "
    "is a log entry on it, not a second page; acknowledge and resolve are idempotent",
    "rollback": "the write re-reads the Deployment first and is conditional on the bad revision still "
    "being live (checked by the API server); the runbook looked again right before it",
    "scale": "scaling to an absolute replica count: the same count is no change",
    "enable-feature": "setting an environment variable to a value: already set, no patch",
    "disable-feature": "setting an environment variable to a value: already set, no patch",
    "escalate": "an escalation step is a list of messages and pages, each claimed (and resolved) on its own",
}
"""Action → why making it again after a takeover cannot act twice."""

_MAX_DEPTH = 5  # respond → runbook subflow → diagnosis subflow: deeper nesting is not used


def _client(api_url: str | None) -> Any:
    from prefect.client.orchestration import SyncPrefectClient, get_client

    return SyncPrefectClient(api_url) if api_url else get_client(sync_client=True)


def run_ended(run_id: str | None, api_url: str | None = None) -> str | None:
    """Why the flow run `run_id` is over ("Crashed", "gone", "parent … Crashed"); None while it (and every
    run above it) is still going, or when there is no run id to ask about."""
    if not run_id:
        return None
    from prefect.exceptions import ObjectNotFound

    with _client(api_url) as client:
        current, path = run_id, ""
        for _ in range(_MAX_DEPTH):
            try:
                run = client.read_flow_run(UUID(current))
            except (ObjectNotFound, ValueError):
                return f"{path}run {current} gone"
            if run.state is not None and run.state.is_final():
                return f"{path}run {current} {run.state.name}"
            if run.parent_task_run_id is None:
                return None
            try:
                parent = client.read_task_run(run.parent_task_run_id).flow_run_id
            except ObjectNotFound:
                return None
            if parent is None:
                return None
            current, path = str(parent), f"{path}parent "
    return None


def unowned_stale_s() -> float:
    """How old a claim no run holds (intake's sweeper) must be before it is an orphan: twice the longest a
    live sender can hold it, i.e. every attempt of the retry policy at the slowest notifier's timeout
    plus the longest wait between attempts (defaults: 3 × (10 s + 30 s) × 2 = 240 s; the waits follow
    the testing switch `RUNBOOK_RETRY_BACKOFF_SCALE`, as the sender's own do)."""
    notifiers = runtime.settings()
    timeout = max(notifiers.slack.timeout_s, notifiers.pagerduty.timeout_s)
    return 2 * RETRY.attempts * (timeout + RETRY.cap_s * backoff_scale())


def adopt_orphan(record: ActionRecord, mine: str | None, api_url: str | None = None) -> Claim | None:
    """Take over `record` when it is an orphan (see the module docstring); None when it is not one.
    `api_url`: the Prefect API to ask (default: the process's settings)."""
    if record.status != ActionStatus.CLAIMED or (record.run_id is not None and record.run_id == mine):
        return None
    holder = f"run {mine}" if mine else "intake's sweeper"
    if not record.run_id:  # claimed by a sweeper: its process is known dead only by the claim's age
        stale_s = unowned_stale_s()
        age = (utc_now() - record.claimed_at).total_seconds()
        if age <= stale_s:
            return None
        detail = (
            f"taken over by {holder}: claimed by intake's sweeper {age:.0f} s ago (> {stale_s:.0f} s, longer "
            f"than any send takes) and never finished: its process died. {record.detail or ''}"
        ).strip()
        cutoff = utc_now() - timedelta(seconds=stale_s)
        return runtime.store().adopt_action(record.key, None, mine, detail[:500], claimed_before=cutoff)
    why = run_ended(record.run_id, api_url)
    if why is None:
        return None
    detail = f"taken over by {holder}: claimed by {why} before it finished. {record.detail or ''}".strip()
    return runtime.store().adopt_action(record.key, record.run_id, mine, detail[:500])
