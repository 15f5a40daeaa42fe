"""Guide: P1 › Actions by Incident Type › Service Completely Down (500+ errors).

Step 1 probe `/health` (timeout/refused → infrastructure) and `/api/health` (500 → application);
Step 2 recent deployments (rollout history, and the repository's last commits where configured);
Step 3 deployed (became live) in the last 15 minutes → roll back, otherwise investigate;
Step 4 `kubectl rollout undo --to-revision=<known good>`, looked at again right before (after any
approval wait), wait for the pods, settle 30 s, verify `/health`;
Step 5 investigate: last 100 log lines, recent events, Sentry's latest issues; not recovered → escalate.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from prefect.input import RunInput
from pydantic import Field

from flows.approval import ask
from flows.outages import escalates_on_outage
from flows.parameters import IncidentId, PollSeconds, RollbackWindowMin, Seconds, ServiceName, Summary
from flows.record import Record
from flows.steps import read_logs, recent_deploys, rollback_and_verify, rollback_plan, sentry_evidence
from flows.targets import probe_service, target_workload
from kubeops import KubernetesError
from kubeops.models import Workload
from runbook.models import DEFAULT_SERVICE, Evidence, IncidentRef, RunbookOutcome, RunbookResult, utc_now
from runbook.severity import Severity
from tasks.kubernetes import list_events

__all__ = ["RollbackApproval", "investigate", "service_down"]

RUNBOOK = "service-down"


class RollbackApproval(RunInput):
    """Shown in the Prefect UI when a rollback waits for the team lead ("approve rollback")."""

    approve: bool = Field(True, description="Roll back to the known-good revision named in the plan")
    comment: str = Field("", description="Why (kept in the incident timeline)")


def investigate(rec: Record, target: Workload, log_lines: int = 100) -> None:
    """Step 5: what the logs, the events and Sentry say, attached as evidence (each source optional)."""
    logs = read_logs(rec, target, "investigate", tail_lines=log_lines, grep=r"error|exception|fatal|memory")
    if logs is not None:
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
    sentry_evidence(rec, "investigate")


@flow(
    name=RUNBOOK, description="P1 › Service Completely Down (500+ errors): probe, recent deploy → rollback."
)
@escalates_on_outage
def service_down(
    service: ServiceName = DEFAULT_SERVICE,
    severity: Severity = Severity.P1,
    summary: Summary = "",
    incident_id: IncidentId = "",
    rollback_window_min: RollbackWindowMin = 15,
    settle_s: Annotated[float, Field(ge=0, le=600)] = 30.0,
    ready_deadline_s: Seconds = 300.0,
    poll_interval_s: PollSeconds = 2.0,
    require_approval: bool = False,
    approval_timeout_s: Annotated[int, Field(ge=1, le=3600)] = 120,
    approval_poll_s: Annotated[int, Field(ge=1, le=60)] = 1,
    dry_run: bool = False,
    incident: IncidentRef | None = None,
) -> RunbookResult:
    """Service Completely Down: probe, recent deploy → rollback, verify; otherwise investigate and escalate.

    Args:
        service: the service in trouble (in the form: one of the catalogue's services)
        severity: the incident's level when one is opened: P1 critical · P2 high · P3 medium · P4 low
        summary: what is wrong, in a sentence (shown in Slack)
        incident_id: an existing incident's id; empty: open (or join) one for this service and runbook
        rollback_window_min: a deploy this recent (minutes) is rolled back (the guide: 15)
        settle_s: wait after the new pods are ready before verifying health (the guide: sleep 30)
        ready_deadline_s: how long to wait for the rollout to complete
        poll_interval_s: how often to look at the rollout
        require_approval: pause for the team lead to approve the rollback (shown as a form in the UI)
        approval_timeout_s: with no answer by then, look again: still down → the guide's default (roll back)
        approval_poll_s: how often the paused run looks for the answer
        dry_run: record and log the plan, change nothing
        incident: Python callers: the whole incident instead of the fields above (not in the form)
    """
    rec = Record.open(
        RUNBOOK,
        IncidentRef.from_form(
            incident,
            service=service,
            severity=severity,
            summary=summary,
            incident_id=incident_id,
            default_summary="service completely down",
        ),
        dry_run=dry_run,
    )
    target = target_workload()

    # Step 1: application or infrastructure?
    probe = probe_service()
    rec.add_evidence(Evidence(kind="health", title="health probes", content=probe.summary()))
    rec.note("assess", f"Step 1: {probe.summary()}")
    if probe.healthy:
        return rec.finish(RunbookOutcome.RECOVERED_BY_ITSELF, "both health endpoints answer 200")

    # Step 2: recent deployments; Step 3: deployed in the last 15 min → ROLLBACK, otherwise investigate
    deploy = recent_deploys(rec, target, rollback_window_min)
    current = deploy.current
    age = deploy.age(utc_now())
    rec.note("assess", f"Step 2: live revision {current.revision if current else '?'} deployed {age}")
    if not deploy.can_roll_back:
        why = (
            deploy.why_good or "no earlier revision to roll back to"
            if deploy.recent
            else f"no deploy in the last {rollback_window_min} min"
        )
        rec.note("decide", f"Step 3: {why} → investigate")
        investigate(rec, target)
        return rec.finish(RunbookOutcome.ESCALATED, f"not rolled back ({why}); escalated with evidence")
    plan = rollback_plan(target, deploy)
    rec.note("decide", f"Step 3: deployed {age} (< {rollback_window_min} min) → ROLLBACK: {plan}")

    if require_approval and not dry_run:
        rec.note(
            "approval",
            f"waiting up to {approval_timeout_s:.0f}s for the team lead to approve the rollback ({plan})",
        )
        answer = ask(RollbackApproval, timeout_s=approval_timeout_s, poll_interval_s=approval_poll_s)
        if answer is None:
            # No default applied blindly: look again first; the rollback below also re-reads the revision.
            again = probe_service()
            rec.note("verify", f"no answer in time; looked again before acting: {again.summary()}")
            if again.healthy:
                return rec.finish(
                    RunbookOutcome.RECOVERED,
                    f"nobody approved within {approval_timeout_s}s and the service recovered meanwhile "
                    f"({again.summary()}): nothing written",
                )
            rec.note("approval", "no answer in time: the guide's default applies (rollback)")
        else:
            rec.note("approval", f"answered: approve={answer.approve} {answer.comment}".rstrip())
            if not answer.approve:
                investigate(rec, target)
                return rec.finish(RunbookOutcome.ESCALATED, "rollback declined by a person; escalated")

    # Step 4: look again, rollback, wait for the pods, settle, verify (Step 5 when it did not help)
    return rollback_and_verify(
        rec,
        target,
        deploy,
        ready_deadline_s=ready_deadline_s,
        poll_interval_s=poll_interval_s,
        settle_s=settle_s,
        investigate=lambda: investigate(rec, target),
    )
