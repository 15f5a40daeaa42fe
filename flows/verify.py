"""After a change: wait for the rollout, settle, read health; a change that made it worse is put back once.

`verify_change` leads the summary with what happened to the Deployment and finishes the run: the given
outcome when the probes answer 200, else escalated (`investigate` first). With the health reading from
before and an `undo` (our change was written), worse than before or a failed rollout → `restore_once`: the
undo as a claimed action, and an escalation with both readings (docs/safety.md says why).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from flows.guards import Reading, reading
from flows.record import Record
from kubeops import KubernetesError
from kubeops.models import Workload
from runbook.models import Evidence, RunbookOutcome, RunbookResult
from runbook.policy import worse_after
from tasks.kubernetes import wait_for_rollout

__all__ = ["VerifyOptions", "restore_once", "verify_change"]


@dataclass(frozen=True)
class VerifyOptions:
    """How long to wait for the rollout and how often to look, how long to settle, what to attach when escalating."""

    ready_deadline_s: float
    poll_interval_s: float
    settle_s: float
    investigate: Callable[[], None] | None


def verify_change(
    rec: Record,
    target: Workload,
    what: str,
    healthy: RunbookOutcome,
    args: VerifyOptions,
    before: Reading | None = None,
    undo: tuple[str, str, Callable[[], object]] | None = None,
) -> RunbookResult:
    """Wait for the rollout, settle, probe; `what` (what happened to the Deployment) leads the summary,
    `healthy` is the outcome when the probes answer 200. With `before` and `undo` (our change was
    written): worse than before, or the rollout failed → `undo` once, escalate with both readings."""
    rollout_failed = ""
    try:
        status = wait_for_rollout(
            target, deadline_s=args.ready_deadline_s, poll_interval_s=args.poll_interval_s
        )
        rec.note("verify", f"rollout: {status.message}")
    except KubernetesError as exc:
        rollout_failed = str(exc)
        rec.note("verify", f"rollout did not complete: {exc}")
    if args.settle_s and not rollout_failed:
        rec.note("verify", f"settling {args.settle_s:.0f}s before verifying")
        time.sleep(args.settle_s)
    after = reading()
    rec.add_evidence(Evidence(kind="health", title="health after rollback", content=after.line()))
    rec.note("verify", after.line())
    if after.healthy and not rollout_failed:
        return rec.finish(healthy, f"{what}; health verified")
    made_worse = before is not None and worse_after(
        before.failing, after.failing, rollout_failed=bool(rollout_failed)
    )
    if before is not None and undo is not None and made_worse:
        return restore_once(rec, target, what, before, after, rollout_failed, undo)
    if args.investigate is not None:
        args.investigate()
    return rec.finish(RunbookOutcome.ESCALATED, f"still unhealthy after: {what}; escalated")


def restore_once(
    rec: Record,
    target: Workload,
    what: str,
    before: Reading,
    after: Reading,
    rollout_failed: str,
    undo: tuple[str, str, Callable[[], object]],
) -> RunbookResult:
    """The change made it worse: put back what it changed, once (a claimed action), and escalate."""
    action, plan, run = undo
    why = f"its rollout failed ({rollout_failed})" if rollout_failed else "health is worse than before"
    readings = f"before: {before.line()}; after: {after.line()}"
    rec.add_evidence(
        Evidence(
            kind="health",
            title="health before and after the change",
            content=readings,
            data={"before": before.line(), "after": after.line(), "rollout_failed": rollout_failed or None},
        )
    )
    rec.note("decide", f"{what}, but {why} → restore once: {plan}")
    done = rec.act(action, f"{target.namespace}/deployment/{target.name}", run, plan)
    if done.ok:
        put_back = "restored what it changed"
    elif done.refused:
        put_back = "already restored by another run of this incident"
    else:
        put_back = f"restore not done ({done.error or done.record.status.value})"
    return rec.finish(RunbookOutcome.ESCALATED, f"{what}, but {why}: {put_back}; escalated ({readings})")
