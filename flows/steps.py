"""Steps every flow shares, written once: recent deploys, switching a feature flag, rollback → wait →
verify (logs and Sentry evidence live in flows/evidence.py and are re-exported here).

The rollback goes to a named known-good revision (`known_good`), never a blind `undo`, and looks
again right before it writes (`look_again`), holding the target's lease (one remediation per target
at a time, flows/guards.py); health is read before and after, and a rollback that made it worse is
restored once (`_restore`): docs/safety.md says why and what a person then sees.

Usage (inside a flow)::

    deploy = recent_deploys(rec, target, window_min=15)     # DeployCorrelation; a Kubernetes error is noted
    issues = sentry_evidence(rec, "assess")                 # Sentry's unresolved issues, top first, as evidence
    if deploy.can_roll_back:
        return rollback_and_verify(rec, target, deploy, ready_deadline_s=300, poll_interval_s=2)

Each source is optional: Kubernetes, Sentry or git failing becomes a note in the incident's timeline
(evidence that the source was out), never a failed flow, so an outage of a source cannot stop a response.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel

from flows.evidence import read_logs, sentry_evidence
from flows.guards import Hold, Reading, hold_target, reading
from flows.record import ActDone, Record
from flows.targets import probe_service
from kubeops import KubernetesError
from kubeops.models import Revision, RolloutFacts, Workload
from kubeops.rollout import RevisionChanged
from runbook.models import Evidence, RunbookOutcome, RunbookResult, utc_now
from runbook.policy import deployed_recently, worse_after
from tasks import runtime
from tasks.deploys import GitLogFailed, list_recent_commits
from tasks.feature_flags import FlagChange, set_feature_flag
from tasks.kubernetes import get_rollout_facts, rollout_undo, wait_for_rollout

__all__ = [
    "DeployCorrelation",
    "known_good",
    "look_again",
    "read_logs",
    "recent_deploys",
    "rollback_and_verify",
    "rollback_plan",
    "sentry_evidence",
    "switch_feature",
]


# --- recent deploys ---------------------------------------------------------------------------------------


class DeployCorrelation(BaseModel):
    """ "Was code deployed recently?": the live revision, the known-good one to go back to, and whether
    the live one became live within the window."""

    current: Revision | None = None
    previous: Revision | None = None  # the known-good revision: the rollback's target (see known_good)
    why_good: str = ""
    recent: bool = False
    window_min: int = 15

    @property
    def can_roll_back(self) -> bool:
        """Deployed within the window, with a known-good earlier revision to go back to."""
        return self.recent and self.current is not None and self.previous is not None

    def age(self, now: datetime) -> str:
        """ "3 min ago", or "unknown" without a live revision's time."""
        since = self.current.live_since if self.current is not None else None
        if since is None:
            return "unknown"
        return f"{(now - since).total_seconds() / 60:.0f} min ago"

    def line(self, now: datetime) -> str:
        since = self.current.live_since if self.current is not None else None
        if self.current is None or since is None:
            return "no rollout history"
        age = (now - since).total_seconds() / 60
        verdict = "within" if self.recent else "not within"
        good = (
            f"; known good: revision {self.previous.revision} ({self.why_good})"
            if self.previous is not None
            else f"; {self.why_good}"
            if self.why_good
            else ""
        )
        return (
            f"live revision {self.current.revision} ({', '.join(self.current.images)}) deployed "
            f"{_age(age)} ago: {verdict} the last {self.window_min} min{good}"
        )


def _age(minutes: float) -> str:
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.0f} h" if minutes < 48 * 60 else f"{minutes / 1440:.0f} days"


def known_good(facts: RolloutFacts) -> tuple[Revision | None, str]:
    """The newest revision older than the live one whose pods were Ready, and why it counts as such.

    The API keeps no readiness record of a ReplicaSet scaled to zero, so "were Ready" is what it can
    still show (docs/safety.md, "Rollback to a known-good revision"):
    - its ReplicaSet has Ready pods now (the old release still serving beside a rollout that is stuck); or
    - it is the revision the live one replaced (the next-highest number) and the Deployment has been
      `Available` since before the live one went live: the available pods then were its pods.
    None (with the reason) when no revision qualifies: then nothing is rolled back blindly.
    """
    live = facts.live
    if live is None:
        return None, "no live revision"
    older = sorted(
        (r for r in facts.revisions if r.revision < live.revision and r.replica_set != live.replica_set),
        key=lambda r: -r.revision,
    )
    went_live = live.live_since
    for rank, candidate in enumerate(older):
        if candidate.ready_replicas > 0:
            return candidate, f"{candidate.ready_replicas} Ready pods of {candidate.replica_set} now"
        if (
            rank == 0
            and facts.available_since is not None
            and went_live is not None
            and facts.available_since <= went_live
        ):
            return candidate, (
                f"the Deployment was Available (since {facts.available_since:%Y-%m-%d %H:%M} UTC) on its "
                f"pods when revision {live.revision} replaced it"
            )
    return None, "no earlier revision is known to have had Ready pods"


def recent_deploys(rec: Record, target: Workload, window_min: int = 15) -> DeployCorrelation:
    """The rollout history (and the repository's last commits where one is configured) as evidence.

    A revision's deploy time is when it became live (its ReplicaSet last scaled up from 0, as the
    Deployment's events show it), not when its ReplicaSet was created: a re-deployed release reuses its
    old ReplicaSet. Kubernetes failing is noted and answered with "no rollout history" (nothing to roll
    back), so an API-server outage turns into evidence instead of a crashed runbook.
    """
    try:
        facts = get_rollout_facts(target)
    except KubernetesError as exc:
        rec.note("assess", f"rollout history unavailable: {exc}")
        return DeployCorrelation(window_min=window_min)
    history = facts.revisions
    current = facts.live
    good, why = known_good(facts)
    now = utc_now()
    since = current.live_since if current is not None else None
    recent = since is not None and deployed_recently(since, now, timedelta(minutes=window_min))
    found = DeployCorrelation(
        current=current, previous=good, why_good=why, recent=recent, window_min=window_min
    )
    rec.add_evidence(
        Evidence(
            kind="deploys",
            title="rollout history",
            content="\n".join(
                f"{r.revision:>4}  {r.live_since:%Y-%m-%d %H:%M:%S}  {', '.join(r.images)}"
                f"  ready {r.ready_replicas}{'  (live)' if r.current else ''}  {r.change_cause or ''}".rstrip()
                for r in history
                if r.live_since
            ),
            data={"revisions": [r.model_dump(mode="json") for r in history]},
        )
    )
    repo = runtime.settings().deploys.repo_path
    if repo is not None:
        try:
            commits = list_recent_commits(repo, count=5)
            rec.add_evidence(
                Evidence(
                    kind="deploys",
                    title="git log --oneline -5",
                    content="\n".join(f"{c.sha} {c.subject}" for c in commits),
                )
            )
        except GitLogFailed as exc:
            rec.note("deploys", f"recent commits unavailable: {exc}")
    rec.note("assess", f"deployment correlation: {found.line(now)}")
    return found


# --- feature flags ----------------------------------------------------------------------------------------


def switch_feature(rec: Record, target: Workload, flag: str, enabled: bool) -> ActDone[FlagChange]:
    """The guide's `kubectl set env deployment/X FLAG=true|false` as a claimed action (once per incident)."""
    value = "true" if enabled else "false"
    return rec.act(
        "enable-feature" if enabled else "disable-feature",
        f"{target.namespace}/deployment/{target.name}:{flag}",
        lambda: set_feature_flag(target, flag, enabled),
        f"kubectl set env deployment/{target.name} {flag}={value}",
    )


# --- rollback → wait → verify -----------------------------------------------------------------------------


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
    args = _Args(ready_deadline_s, poll_interval_s, settle_s, investigate)
    bad, good = (r.revision if r else "?" for r in (deploy.current, deploy.previous))
    with hold_target(rec, target, f"rollback of deployment/{target.name}, revision {bad} → {good}") as hold:
        if hold.waited:
            return _reassess(rec, target, deploy, hold, args)
        return _rollback_held(rec, target, deploy, args)


@dataclass(frozen=True)
class _Args:
    ready_deadline_s: float
    poll_interval_s: float
    settle_s: float
    investigate: Callable[[], None] | None


def _reassess(
    rec: Record, target: Workload, deploy: DeployCorrelation, hold: Hold, args: _Args
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


def _rollback_held(rec: Record, target: Workload, deploy: DeployCorrelation, args: _Args) -> RunbookResult:
    """The rollback itself, the target's lease held: look again, read health, write, verify (restore)."""
    plan = rollback_plan(target, deploy)
    if deploy.current is None or deploy.previous is None:
        raise ValueError("rollback_and_verify needs the live revision and the known-good one")
    bad, good = deploy.current.revision, deploy.previous.revision

    def verify(what: str, healthy: RunbookOutcome = RunbookOutcome.ROLLED_BACK) -> RunbookResult:
        return _verify(rec, target, what, healthy, args)

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

    return _verify(
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


def _verify(
    rec: Record,
    target: Workload,
    what: str,
    healthy: RunbookOutcome,
    args: _Args,
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
        return _restore(rec, target, what, before, after, rollout_failed, undo)
    if args.investigate is not None:
        args.investigate()
    return rec.finish(RunbookOutcome.ESCALATED, f"still unhealthy after: {what}; escalated")


def _restore(
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
