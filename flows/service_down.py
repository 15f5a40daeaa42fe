"""Guide: P1 › Actions by Incident Type › Service Completely Down (500+ errors).

Step 1 probe `/health` (timeout/refused → infrastructure) and `/api/health` (500 → application);
Step 2 recent deployments (rollout history, and the repository's last commits where configured);
Step 3 deployed in the last 15 minutes → roll back, otherwise investigate;
Step 4 `kubectl rollout undo`, wait for the pods, settle 30 s, verify `/health`;
Step 5 investigate: last 100 log lines, recent events, Sentry's latest issues; not recovered → escalate.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated

from prefect import flow
from prefect.input import RunInput
from pydantic import Field

from flows.approval import ask
from flows.record import Record
from flows.targets import probe_service, target_workload
from kubeops import KubernetesError
from kubeops.models import Revision, Workload
from runbook.models import Evidence, IncidentRef, RunbookOutcome, RunbookResult, utc_now
from runbook.policy import deployed_recently
from tasks import runtime
from tasks.deploys import GitLogFailed, list_recent_commits
from tasks.kubernetes import (
    get_deployment_logs,
    get_rollout_history,
    list_events,
    rollout_undo,
    wait_for_rollout,
)
from tasks.sentry import SentryFailed, get_latest_event, list_unresolved_issues

__all__ = ["RollbackApproval", "investigate", "service_down"]

RUNBOOK = "service-down"


class RollbackApproval(RunInput):
    """Shown in the Prefect UI when a rollback waits for the team lead ("approve rollback")."""

    approve: bool = Field(True, description="Roll back to the previous revision")
    comment: str = Field("", description="Why (kept in the incident timeline)")


def investigate(rec: Record, target: Workload, log_lines: int = 100) -> None:
    """Step 5: what the logs, the events and Sentry say, attached as evidence (each source optional)."""
    try:
        logs = get_deployment_logs(target, tail_lines=log_lines, grep=r"error|exception|fatal|memory")
        rec.add_evidence(
            Evidence(
                kind="logs",
                title=f"last {log_lines} log lines of {logs.pod}",
                content="\n".join(logs.lines),
                data={"pod": logs.pod, "matches": logs.matches[-20:]},
            )
        )
        rec.note(
            "investigate", f"logs of {logs.pod}: {len(logs.matches)} error lines in the last {log_lines}"
        )
    except KubernetesError as exc:
        rec.note("investigate", f"logs unavailable: {exc}")
    try:
        events = list_events(target.namespace, limit=20)
        rec.add_evidence(
            Evidence(
                kind="events",
                title="recent events",
                content="\n".join(
                    f"{e.last_seen} {e.type} {e.reason} {e.kind}/{e.name}: {e.message}" for e in events
                ),
            )
        )
        rec.note("investigate", f"{len(events)} recent events in {target.namespace}")
    except KubernetesError as exc:
        rec.note("investigate", f"events unavailable: {exc}")
    sentry = runtime.settings().sentry
    if sentry.token is None:
        rec.note("investigate", "Sentry not configured (no token): skipped")
        return
    try:
        issues = list_unresolved_issues(
            str(sentry.api_url), sentry.org, sentry.project, sentry.token, limit=5
        )
        text = "\n".join(f"{i.count:>6}  {i.title}  ({i.culprit})" for i in issues) or "no unresolved issues"
        rec.add_evidence(Evidence(kind="sentry", title="Sentry: latest unresolved issues", content=text))
        if issues:
            event = get_latest_event(str(sentry.api_url), issues[0].id, sentry.token)
            rec.add_evidence(
                Evidence(
                    kind="sentry",
                    title=f"Sentry: latest event of {issues[0].title}",
                    content=f"{event.message}\n{event.stack_text()}",
                )
            )
        rec.note(
            "investigate",
            f"Sentry: {len(issues)} unresolved issues, top: {issues[0].title if issues else '-'}",
        )
    except SentryFailed as exc:
        rec.note("investigate", f"Sentry unavailable: {exc}")


def recent_deploys(rec: Record, target: Workload) -> tuple[Revision | None, Revision | None]:
    """Step 2: the live revision and the one before it, and the last commits where a repo is configured."""
    history = get_rollout_history(target)
    current = next((r for r in history if r.current), history[-1] if history else None)
    previous = max((r for r in history if current and r.revision < current.revision), default=None, key=_rev)
    rec.add_evidence(
        Evidence(
            kind="deploys",
            title="rollout history",
            content="\n".join(
                f"{r.revision:>4}  {r.created_at:%Y-%m-%d %H:%M:%S}  {', '.join(r.images)}"
                f"{'  (live)' if r.current else ''}  {r.change_cause or ''}"
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
    return current, previous


def _rev(r: Revision) -> int:
    return r.revision


@flow(
    name=RUNBOOK, description="P1 › Service Completely Down (500+ errors): probe, recent deploy → rollback."
)
def service_down(
    incident: IncidentRef | None = None,
    rollback_window_min: Annotated[int, Field(ge=1, le=1440)] = 15,
    settle_s: Annotated[float, Field(ge=0, le=600)] = 30.0,
    ready_deadline_s: Annotated[float, Field(gt=0, le=3600)] = 300.0,
    poll_interval_s: Annotated[float, Field(gt=0, le=60)] = 2.0,
    require_approval: bool = False,
    approval_timeout_s: Annotated[int, Field(ge=1, le=3600)] = 120,
    approval_poll_s: Annotated[int, Field(ge=1, le=60)] = 1,
    dry_run: bool = False,
) -> RunbookResult:
    """Service Completely Down: probe, recent deploy → rollback, verify; otherwise investigate and escalate.

    Args:
        incident: the incident to work on; empty: open (or join) one for this service, started by hand
        rollback_window_min: a deploy this recent (minutes) is rolled back (the guide: 15)
        settle_s: wait after the new pods are ready before verifying health (the guide: sleep 30)
        ready_deadline_s: how long to wait for the rollout to complete
        poll_interval_s: how often to look at the rollout
        require_approval: pause for the team lead to approve the rollback (shown as a form in the UI)
        approval_timeout_s: with no answer by then, the guide's default applies: roll back
        approval_poll_s: how often the paused run looks for the answer
        dry_run: record and log the plan, change nothing
    """
    rec = Record.open(RUNBOOK, incident or IncidentRef(summary="service completely down"), dry_run=dry_run)
    target = target_workload()

    # Step 1: application or infrastructure?
    probe = probe_service()
    rec.add_evidence(Evidence(kind="health", title="health probes", content=probe.summary()))
    rec.note("assess", f"Step 1: {probe.summary()}")
    if probe.healthy:
        return rec.finish(RunbookOutcome.RECOVERED_BY_ITSELF, "both health endpoints answer 200")

    # Step 2: recent deployments
    current, previous = recent_deploys(rec, target)
    now = utc_now()
    deployed_at = current.created_at if current else None
    age = f"{(now - deployed_at).total_seconds() / 60:.0f} min ago" if deployed_at else "unknown"
    rec.note("assess", f"Step 2: live revision {current.revision if current else '?'} deployed {age}")

    # Step 3: deployed in the last 15 min → ROLLBACK, otherwise investigate
    recent = deployed_at is not None and deployed_recently(
        deployed_at, now, timedelta(minutes=rollback_window_min)
    )
    if not recent or previous is None:
        why = (
            "no earlier revision to roll back to"
            if recent
            else f"no deploy in the last {rollback_window_min} min"
        )
        rec.note("decide", f"Step 3: {why} → investigate")
        investigate(rec, target)
        return rec.finish(RunbookOutcome.ESCALATED, f"not rolled back ({why}); escalated with evidence")
    assert current is not None
    rec.note(
        "decide", f"Step 3: deployed {age} (< {rollback_window_min} min) → ROLLBACK to {previous.revision}"
    )

    if require_approval and not dry_run:
        rec.note(
            "approval", f"waiting up to {approval_timeout_s:.0f}s for the team lead to approve the rollback"
        )
        answer = ask(RollbackApproval, timeout_s=approval_timeout_s, poll_interval_s=approval_poll_s)
        if answer is None:
            rec.note("approval", "no answer in time: the guide's default applies (rollback)")
        else:
            rec.note("approval", f"answered: approve={answer.approve} {answer.comment}".rstrip())
            if not answer.approve:
                investigate(rec, target)
                return rec.finish(RunbookOutcome.ESCALATED, "rollback declined by a person; escalated")

    # Step 4: rollback, wait for the pods, settle, verify
    plan = f"kubectl rollout undo deployment/{target.name}: revision {current.revision} → {previous.revision}"
    done = rec.act(
        "rollback", f"{target.namespace}/deployment/{target.name}", lambda: rollout_undo(target), plan
    )
    if done.dry_run:
        return rec.finish(RunbookOutcome.ROLLED_BACK, plan)
    if done.error is not None:
        investigate(rec, target)
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
    if after.healthy:
        verb = "rolled back" if done.ok else "already rolled back by another run of this incident"
        return rec.finish(
            RunbookOutcome.ROLLED_BACK, f"{verb} to revision {previous.revision}; health verified"
        )
    rec.note("verify", f"still unhealthy after rollback: {after.summary()}")
    investigate(rec, target)
    return rec.finish(RunbookOutcome.ESCALATED, "still down after rollback; escalated with evidence")
