"""Guide: P2 › Common P2 Issues › Error Rate Spike (5-10%).

Diagnosis: 1. which endpoint is failing (the service's per-route error rates; Sentry grouping for the
error pattern); 2. code or infrastructure (logs, database connections, memory/CPU); 3. deployment
correlation (was code deployed recently?). Then the fix options, in the guide's order:
  a) quick config change (feature flag): the failing endpoint's errors come from an external API whose
     feature has a flag → turn the flag off;
  b) redeploy without cache: weighed, never chosen automatically (nothing observable says a cache is
     stale; a person can do it from the thread);
  c) hotfix for an obvious bug: a person's job → escalate to the team lead with the evidence;
  d) rollback if too complex; "If no quick fix → ROLLBACK".

Conclusions (the `conclusion` evidence of the result):
- `not_reproduced`: the error rate is at or below the threshold now → recovered by itself.
- `infrastructure_database`: the database is unreachable or the errors are database errors → the
  database runbook (pool reset, pool size) as the quick fix.
- `infrastructure_resources`: CPU or memory under pressure (>= 90% of a node, or out-of-memory lines)
  → the resource-exhaustion runbook (scale up).
- `feature_flag` (option a): the failing endpoint's errors are an external API's → its flag off.
- `deploy_regression` (option d): code errors, and the live revision was deployed within the window →
  roll back to the previous revision, verify.
- `code_defect` (option c): code errors, no infrastructure cause, no deploy to correlate → no quick
  fix an automaton can make. The guide says roll back, but rolling back a release older than the
  spike cannot remove its cause (decision: a rollback needs a correlated deploy); escalated to the
  team lead for a hotfix, with the endpoint, the error pattern and the evidence.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.database_lost import database_lost
from flows.diagnoses import (
    METRICS_PATH,
    check_infrastructure,
    conclude,
    metrics_evidence,
)
from flows.outages import escalates_on_outage
from flows.parameters import IncidentId, PollSeconds, RollbackWindowMin, Seconds, ServiceName, Summary
from flows.record import Record
from flows.resource_exhaustion import resource_exhaustion
from flows.steps import recent_deploys, rollback_and_verify, sentry_evidence, switch_feature
from flows.targets import target_workload
from runbook.models import DEFAULT_SERVICE, IncidentRef, RunbookOutcome, RunbookResult
from runbook.severity import Severity
from tasks import runtime
from tasks.external_apis import check_external_api

__all__ = ["error_rate_spike"]

RUNBOOK = "error-rate-spike"


@flow(
    name=RUNBOOK,
    description="P2 › Error Rate Spike: which endpoint, code or infrastructure, deploy → fix a–d.",
)
@escalates_on_outage
def error_rate_spike(
    service: ServiceName = DEFAULT_SERVICE,
    severity: Severity = Severity.P2,
    summary: Summary = "",
    incident_id: IncidentId = "",
    window_s: Seconds = 300.0,
    threshold_pct: Annotated[float, Field(ge=0, le=100)] = 5.0,
    rollback_window_min: RollbackWindowMin = 15,
    ready_deadline_s: Seconds = 300.0,
    poll_interval_s: PollSeconds = 2.0,
    metrics_path: str = METRICS_PATH,
    dry_run: bool = False,
    incident: IncidentRef | None = None,
) -> RunbookResult:
    """Error Rate Spike (5-10%): find the failing endpoint and why, then the guide's fix options a–d.

    Args:
        service: the service in trouble (in the form: one of the catalogue's services)
        severity: the incident's level when one is opened: P1 critical · P2 high · P3 medium · P4 low
        summary: what is wrong, in a sentence (shown in Slack)
        incident_id: an existing incident's id; empty: open (or join) one for this service and runbook
        window_s: the metrics window read (seconds of traffic)
        threshold_pct: an error rate above this is a spike (the guide's P2: > 5%)
        rollback_window_min: a deploy this recent (minutes) correlates with the errors (the guide: 15)
        ready_deadline_s: how long to wait for a rollback's pods
        poll_interval_s: how often to look while waiting
        metrics_path: the service's metrics endpoint
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
            default_summary="error rate spike",
        ),
        dry_run=dry_run,
    )
    target = target_workload()

    # 1. Which endpoint is failing? (metrics per route; Sentry grouping for the pattern)
    metrics = metrics_evidence(rec, window_s, metrics_path)
    failing = [
        (r, m) for r, m in metrics.failing_routes() if m.error_rate_pct > threshold_pct
    ] or metrics.failing_routes()
    issues = sentry_evidence(rec, "assess")
    top = issues[0] if issues else None
    pattern = f"{top.title} ({top.culprit}, {top.count} events)" if top else "no Sentry issue"
    endpoint = failing[0][0] if len(failing) == 1 else f"{len(failing)} endpoints" if failing else "none"
    where = ", ".join(f"{r} {m.error_rate_pct:g}%" for r, m in failing[:6]) or "none"
    rec.note(
        "assess", f"1. error rate {metrics.error_rate_pct:g}% overall; failing: {where}; pattern: {pattern}"
    )
    if metrics.error_rate_pct <= threshold_pct and not any(
        m.error_rate_pct > threshold_pct for _, m in failing
    ):
        conclude(
            rec,
            "not_reproduced",
            f"error rate {metrics.error_rate_pct:g}% <= {threshold_pct:g}% over {window_s:g} s",
        )
        return rec.finish(
            RunbookOutcome.RECOVERED_BY_ITSELF, f"error rate {metrics.error_rate_pct:g}%: no spike now"
        )
    spread = (
        f"one error pattern across {len(failing)} endpoints: shared code ({top.culprit})"
        if top and len(failing) > 1
        else f"on {endpoint}"
    )

    # 2. Is it code or infrastructure?
    infra = check_infrastructure(rec, target)
    kinds = " ".join(i.title for i in issues[:3]).lower()
    details = {
        "endpoints": [r for r, _ in failing],
        "error_rate_pct": metrics.error_rate_pct,
        "pattern": pattern,
    }
    if infra.database_down or "databaseerror" in kinds or "database unreachable" in kinds:
        conclude(rec, "infrastructure_database", f"database: {infra.line()}; pattern {pattern}", data=details)
        sub = database_lost(incident_id=rec.incident.id, poll_interval_s=poll_interval_s, dry_run=dry_run)
        return rec.finish(sub.outcome, f"infrastructure (database): {sub.summary}")
    if infra.saturated:
        conclude(rec, "infrastructure_resources", f"resources: {infra.line()}", data=details)
        sub = resource_exhaustion(
            incident_id=rec.incident.id, poll_interval_s=poll_interval_s, dry_run=dry_run
        )
        return rec.finish(sub.outcome, f"infrastructure (CPU/memory): {sub.summary}")
    rec.note("assess", f"2. code, not infrastructure: {infra.line()}")

    # Fix option a) quick config change: the errors are an external API's, and its feature has a flag
    settings = runtime.settings()
    upstream = next(
        (a for a in settings.external_apis if top and "upstream" in kinds and a.name in kinds), None
    )
    if upstream is not None:
        api = upstream
        status = check_external_api(api.name, str(api.health_url), settings.service.http_timeout_s)
        conclude(
            rec,
            "feature_flag",
            f"{where} fail because {api.name} fails ({status.probe.line()}): option a) turn {api.feature_flag} off",
            options=[
                f"a) quick config change: {api.feature_flag}=false",
                "d) rollback: would not bring the API back",
            ],
            data=details,
        )
        done = switch_feature(rec, target, api.feature_flag, False)
        if done.error is not None:
            return rec.finish(
                RunbookOutcome.ESCALATED, f"turning {api.feature_flag} off failed: {done.error}"
            )
        return rec.finish(
            RunbookOutcome.MITIGATED,
            f"{api.feature} disabled while {api.name} fails; re-enable when it is back",
        )

    # 3. Deployment correlation?
    deploy = recent_deploys(rec, target, rollback_window_min)
    options = [
        "a) quick config change: the errors are the service's own, no feature flag turns them off",
        "b) redeploy without cache: nothing observed points at a stale cache (left to a person)",
    ]
    if deploy.can_roll_back and deploy.previous is not None and deploy.current is not None:
        conclude(
            rec,
            "deploy_regression",
            f"code errors {spread} after revision {deploy.current.revision} went out: option d) rollback",
            options=[
                *options,
                "c) hotfix: slower than a rollback",
                f"d) rollback to revision {deploy.previous.revision}",
            ],
            data=details,
        )
        return rollback_and_verify(
            rec, target, deploy, ready_deadline_s=ready_deadline_s, poll_interval_s=poll_interval_s
        )
    conclude(
        rec,
        "code_defect",
        f"code errors {spread} ({pattern}); not infrastructure; no deploy in the last {rollback_window_min} "
        "min to roll back: a hotfix is needed",
        options=[
            *options,
            "c) hotfix for the bug: needs a person (escalated to the team lead)",
            "d) rollback: the live release predates the errors, so rolling it back cannot remove their cause",
        ],
        data=details,
    )
    return rec.finish(
        RunbookOutcome.ESCALATED, f"code defect on {endpoint}: {pattern}; escalated for a hotfix"
    )
