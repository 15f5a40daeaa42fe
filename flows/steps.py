"""Steps every flow shares, written once: recent deploys, Sentry evidence, rollback → wait → verify.

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
from datetime import datetime, timedelta

from pydantic import BaseModel

from flows.record import Record
from flows.targets import probe_service
from kubeops import KubernetesError
from kubeops.models import DeploymentLogs, Revision, Workload
from runbook.models import Evidence, RunbookOutcome, RunbookResult, utc_now
from runbook.policy import deployed_recently
from tasks import runtime
from tasks.deploys import GitLogFailed, list_recent_commits
from tasks.kubernetes import get_deployment_logs, get_rollout_history, rollout_undo, wait_for_rollout
from tasks.sentry import SentryFailed, SentryIssueSummary, get_latest_event, list_unresolved_issues

__all__ = [
    "DeployCorrelation",
    "read_logs",
    "recent_deploys",
    "rollback_and_verify",
    "sentry_evidence",
]


# --- logs -----------------------------------------------------------------------------------------------


def read_logs(
    rec: Record, target: Workload, step: str, *, tail_lines: int = 100, grep: str | None = None
) -> DeploymentLogs | None:
    """`kubectl logs deployment/X --tail=N | grep -i …`; None, noted under `step`, when Kubernetes fails."""
    try:
        return get_deployment_logs(target, tail_lines=tail_lines, grep=grep)
    except KubernetesError as exc:
        rec.note(step, f"logs unavailable: {exc}")
        return None


# --- recent deploys ---------------------------------------------------------------------------------------


class DeployCorrelation(BaseModel):
    """ "Was code deployed recently?": the live revision, the one before it, and whether it is recent."""

    current: Revision | None = None
    previous: Revision | None = None
    recent: bool = False
    window_min: int = 15

    @property
    def can_roll_back(self) -> bool:
        """Deployed within the window, with an earlier revision to go back to."""
        return self.recent and self.current is not None and self.previous is not None

    def age(self, now: datetime) -> str:
        """ "3 min ago", or "unknown" without a live revision's time."""
        if self.current is None or self.current.created_at is None:
            return "unknown"
        return f"{(now - self.current.created_at).total_seconds() / 60:.0f} min ago"

    def line(self, now: datetime) -> str:
        if self.current is None or self.current.created_at is None:
            return "no rollout history"
        age = (now - self.current.created_at).total_seconds() / 60
        verdict = "within" if self.recent else "not within"
        return (
            f"live revision {self.current.revision} ({', '.join(self.current.images)}) deployed "
            f"{_age(age)} ago: {verdict} the last {self.window_min} min"
        )


def _age(minutes: float) -> str:
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.0f} h" if minutes < 48 * 60 else f"{minutes / 1440:.0f} days"


def recent_deploys(rec: Record, target: Workload, window_min: int = 15) -> DeployCorrelation:
    """The rollout history (and the repository's last commits where one is configured) as evidence.

    Kubernetes failing is noted and answered with "no rollout history" (nothing to roll back), so an
    API-server outage turns into evidence instead of a crashed runbook.
    """
    try:
        history = get_rollout_history(target)
    except KubernetesError as exc:
        rec.note("assess", f"rollout history unavailable: {exc}")
        return DeployCorrelation(window_min=window_min)
    current = next((r for r in history if r.current), history[-1] if history else None)
    older = [r for r in history if current is not None and r.revision < current.revision]
    previous = max(older, key=lambda r: r.revision) if older else None
    now = utc_now()
    recent = (
        current is not None
        and current.created_at is not None
        and deployed_recently(current.created_at, now, timedelta(minutes=window_min))
    )
    found = DeployCorrelation(current=current, previous=previous, recent=recent, window_min=window_min)
    rec.add_evidence(
        Evidence(
            kind="deploys",
            title="rollout history",
            content="\n".join(
                f"{r.revision:>4}  {r.created_at:%Y-%m-%d %H:%M:%S}  {', '.join(r.images)}"
                f"{'  (live)' if r.current else ''}  {r.change_cause or ''}".rstrip()
                for r in history
                if r.created_at
            ),
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


# --- Sentry -----------------------------------------------------------------------------------------------


def sentry_evidence(rec: Record, step: str, limit: int = 5) -> list[SentryIssueSummary]:
    """Sentry's unresolved issues (most events first) and the top one's latest event, as evidence.

    [] when Sentry is not configured or does not answer (noted under `step`). Every call is bounded by
    the settings' Sentry timeout.
    """
    sentry = runtime.settings().sentry
    if sentry.token is None:
        rec.note(step, "Sentry not configured (no token): skipped")
        return []
    try:
        issues = list_unresolved_issues(
            str(sentry.api_url),
            sentry.org,
            sentry.project,
            sentry.token,
            limit=limit,
            timeout_s=sentry.timeout_s,
        )
    except SentryFailed as exc:
        rec.note(step, f"Sentry unavailable: {exc}")
        return []
    issues = sorted(issues, key=lambda i: -i.count)
    rec.add_evidence(
        Evidence(
            kind="sentry",
            title="Sentry grouping: unresolved issues",
            content="\n".join(f"{i.count:>6}  {i.title}  ({i.culprit})" for i in issues) or "none",
            data={"issues": [i.model_dump() for i in issues]},
        )
    )
    if issues:
        try:
            event = get_latest_event(
                str(sentry.api_url), issues[0].id, sentry.token, timeout_s=sentry.timeout_s
            )
            rec.add_evidence(
                Evidence(
                    kind="sentry",
                    title=f"Sentry: latest event of {issues[0].title}",
                    content=f"{event.message}\n{event.stack_text()}",
                    data={"exception_type": event.exception_type, "frames": event.frames},
                )
            )
        except SentryFailed as exc:
            rec.note(step, f"Sentry latest event unavailable: {exc}")
    rec.note(step, f"Sentry: {len(issues)} unresolved issues, top: {issues[0].title if issues else '-'}")
    return issues


# --- rollback → wait → verify -----------------------------------------------------------------------------


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
    """`kubectl rollout undo` to the previous revision (claimed once), wait for the pods, settle, verify.

    A failed rollback or a service still unhealthy after it is escalated, `investigate` (when given)
    first attaching what the logs, events and Sentry say.
    """
    if deploy.current is None or deploy.previous is None:
        raise ValueError("rollback_and_verify: no live and previous revision to roll back between")
    previous = deploy.previous.revision
    plan = f"kubectl rollout undo deployment/{target.name}: revision {deploy.current.revision} → {previous}"
    done = rec.act(
        "rollback", f"{target.namespace}/deployment/{target.name}", lambda: rollout_undo(target), plan
    )
    if done.dry_run:
        return rec.finish(RunbookOutcome.ROLLED_BACK, plan)
    if done.error is not None:
        if investigate is not None:
            investigate()
        return rec.finish(RunbookOutcome.ESCALATED, f"rollback failed: {done.error}; escalated")
    try:
        status = wait_for_rollout(target, deadline_s=ready_deadline_s, poll_interval_s=poll_interval_s)
        rec.note("verify", f"rollout: {status.message}")
    except KubernetesError as exc:
        rec.note("verify", f"rollout did not complete: {exc}")
    if settle_s:
        rec.note("verify", f"settling {settle_s:.0f}s before verifying")
        time.sleep(settle_s)
    after = probe_service()
    rec.add_evidence(Evidence(kind="health", title="health after rollback", content=after.summary()))
    rec.note("verify", after.summary())
    if after.healthy:
        verb = "rolled back" if done.ok else "already rolled back by another run of this incident"
        return rec.finish(RunbookOutcome.ROLLED_BACK, f"{verb} to revision {previous}; health verified")
    if investigate is not None:
        investigate()
    return rec.finish(
        RunbookOutcome.ESCALATED, f"still unhealthy after the rollback to revision {previous}; escalated"
    )
