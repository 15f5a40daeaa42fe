"""Rollback → wait → verify, to a named known-good revision, never a blind `undo`.

Looks again right before it writes (`look_again`), holding the target's lease (one remediation per target
at a time, flows/guards.py); health is read before and after, and a rollback that made it worse is
restored once (flows/verify.py): docs/safety.md says why and what a person then sees.
"""

from __future__ import annotations

from collections.abc import Callable

from flows.deploy_correlation import DeployCorrelation, recent_deploys
from flows.guards import Hold, hold_target, reading
from flows.record import Record
from flows.targets import probe_service
from flows.verify import VerifyOptions, verify_change
from kubeops import KubernetesError
from kubeops.models import Workload
from kubeops.rollout import RevisionChanged
from runbook.models import RunbookOutcome, RunbookResult
from tasks.kubernetes import get_rollout_facts, rollout_undo

__all__ = ["look_again", "rollback_and_verify", "rollback_plan"]


def rollback_plan(target: Workload, deploy: DeployCorrelation) -> str:
    """What the rollback will do, in the words the timeline, the claim and the approval form show."""
    if deploy.current is None or deploy.previous is None:
        raise ValueError("rollback_plan: no live and known-good revision to roll back between")
    good = deploy.previous
    return (
        f"kubectl rollout undo deployment/{target.name} --to-revision={good.revision}: revision "
        f"{deploy.current.revision} → {good.revision} ({', '.join(good.images)}, pod-template-hash "
        f"{good.template_hash or '?'}; known good: {deploy.why_good})"
    )


def look_again(rec: Record, target: Workload, deploy: DeployCorrelation) -> tuple[str, RunbookOutcome] | None:
    """Right before the write: is the bad revision still live? None when it is (act); else why not, and
    the outcome should the service prove healthy.

    "already rolled back to revision N" (ROLLED_BACK) when the known-good template is live again (another
    incident, a person, a pipeline); another reason (RECOVERED) when the Deployment moved to anything else.
    """
    if deploy.current is None or deploy.previous is None:
        raise ValueError("look_again needs the live revision and the known-good one")
    bad, good = deploy.current, deploy.previous
    try:
        fresh = get_rollout_facts(target)
    except KubernetesError as exc:
        why = f"could not look at the live revision again before the rollback ({exc}); nothing written"
        return why, RunbookOutcome.RECOVERED
    live = fresh.live
    if live is None:
        return "the Deployment has no revision any more; nothing written", RunbookOutcome.RECOVERED
    if live.replica_set == good.replica_set:
        again = f" (live again as revision {live.revision})" if live.revision != good.revision else ""
        return (
            f"already rolled back to revision {good.revision}{again}; nothing written",
            RunbookOutcome.ROLLED_BACK,
        )
    if live.revision != bad.revision or live.replica_set != bad.replica_set:
        why = (
            f"the live revision is now {live.revision} ({', '.join(live.images)}), no longer the bad "
            f"revision {bad.revision}; nothing written"
        )
        return why, RunbookOutcome.RECOVERED
    rec.note("verify", f"looked again: revision {bad.revision} is still live")
    return None


def rollback_and_verify(
    rec: Record,
    target: Workload,
    deploy: DeployCorrelation,
    *,
    ready_deadline_s: float,
    poll_interval_s: float,
    settle_s: float = 0.0,
    investigate: Callable[[], None] | None = None,
) -> RunbookResult:
    """`kubectl rollout undo --to-revision=<known good>` (claimed once), wait for the pods, settle, verify.

    Holds the target's lease for the whole change (one remediation per target at a time, across
    incidents); when another remediation held it, re-assesses from scratch once it is free (usually:
    healthy, nothing written). Looks again right before the write and does nothing when the bad revision
    is no longer live; the write itself is conditional on the bad revision still being live (checked by
    the API server). Health is read before and after: a rollback that made it worse (or whose rollout
    failed) is restored once and escalated with both readings. A failed rollback or a service still
    unhealthy after it is escalated, `investigate` (when given) first attaching what the logs, events
    and Sentry say.
    """
    rollback_plan(target, deploy)  # raises without a live and a known-good revision
    args = VerifyOptions(ready_deadline_s, poll_interval_s, settle_s, investigate)
    bad, good = (r.revision if r else "?" for r in (deploy.current, deploy.previous))
    with hold_target(rec, target, f"rollback of deployment/{target.name}, revision {bad} → {good}") as hold:
        if hold.waited:
            return _reassess(rec, target, deploy, hold, args)
        return _rollback_held(rec, target, deploy, args)


def _reassess(
    rec: Record, target: Workload, deploy: DeployCorrelation, hold: Hold, args: VerifyOptions
) -> RunbookResult:
    """Another remediation held the target while we waited: decide again on fresh facts, from scratch."""
    probe = probe_service()
    rec.note("reassess", f"looked again from scratch after the wait: {probe.summary()}")
    if probe.healthy:
        if hold.other is not None and hold.other.incident_id == rec.incident.id:  # our incident's other run
            what = f"already rolled back by another run of this incident ({hold.why()}); nothing written"
            return rec.finish(RunbookOutcome.ROLLED_BACK, f"{what}; health verified")
        return rec.finish(RunbookOutcome.RECOVERED, f"{hold.why()}; healthy now: nothing written")
    if not hold.held:
        if args.investigate is not None:
            args.investigate()
        return rec.finish(
            RunbookOutcome.ESCALATED, f"{hold.why()}; still unhealthy, nothing written; escalated"
        )
    fresh = recent_deploys(rec, target, deploy.window_min)
    if not fresh.can_roll_back:
        why = fresh.why_good if fresh.recent else f"no deploy in the last {fresh.window_min} min"
        if args.investigate is not None:
            args.investigate()
        return rec.finish(
            RunbookOutcome.ESCALATED, f"{hold.why()}; still unhealthy, not rolled back ({why}); escalated"
        )
    rec.note("decide", f"still unhealthy after the wait → ROLLBACK: {rollback_plan(target, fresh)}")
    return _rollback_held(rec, target, fresh, args)


def _rollback_held(
    rec: Record, target: Workload, deploy: DeployCorrelation, args: VerifyOptions
) -> RunbookResult:
    """The rollback itself, the target's lease held: look again, read health, write, verify (restore)."""
    plan = rollback_plan(target, deploy)
    if deploy.current is None or deploy.previous is None:
        raise ValueError("rollback_and_verify needs the live revision and the known-good one")
    bad, good = deploy.current.revision, deploy.previous.revision

    def verify(what: str, healthy: RunbookOutcome = RunbookOutcome.ROLLED_BACK) -> RunbookResult:
        return verify_change(rec, target, what, healthy, args)

    if not rec.dry_run:
        stale = look_again(rec, target, deploy)
        if stale is not None:
            rec.note("decide", f"not rolling back: {stale[0]}")
            return verify(*stale)
    before = reading() if not rec.dry_run else None
    if before is not None:
        rec.note("verify", f"health before the rollback: {before.line()}")
    done = rec.act(
        "rollback",
        f"{target.namespace}/deployment/{target.name}",
        lambda: rollout_undo(target, to_revision=good, expect_revision=bad),
        plan,
    )
    if done.dry_run:
        return rec.finish(RunbookOutcome.ROLLED_BACK, plan)
    if isinstance(done.error, RevisionChanged):
        return verify(f"{done.error}; nothing written", RunbookOutcome.RECOVERED)
    if done.error is not None:
        if args.investigate is not None:
            args.investigate()
        return rec.finish(RunbookOutcome.ESCALATED, f"rollback failed: {done.error}; escalated")
    if done.value is not None and done.value.skipped:
        return verify(f"already rolled back to revision {good} ({done.value.message}); nothing written")
    if not done.ok:
        return verify(f"already rolled back to revision {good} by another run of this incident")

    def restore() -> str:
        """Put the bad revision's template back (what the rollback replaced), only while ours is live."""
        live = get_rollout_facts(target).live
        result = rollout_undo(target, to_revision=bad, expect_revision=live.revision if live else None)
        return result.message

    return verify_change(
        rec,
        target,
        f"rolled back to revision {good}",
        RunbookOutcome.ROLLED_BACK,
        args,
        before,
        (
            "restore",
            f"kubectl rollout undo deployment/{target.name} --to-revision={bad}: put back what the rollback "
            f"replaced (revision {bad})",
            restore,
        ),
    )
