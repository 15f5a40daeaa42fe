"""Guide: P1 › Actions by Incident Type › Database Connection Lost.

Check connectivity (`psql -c "SELECT 1"`) and the application's view of it (`/api/health`), then the
guide's options in order, verifying after each:
  Option 1 restart the connection pool (`/admin/reset-db-pool`);
  Option 2 scale the pool: `kubectl set env deployment/emotionscare DB_POOL_SIZE=10`, wait for the rollout;
  Option 3 hosted database: restart the Supabase compute instance (Management API) when configured,
           otherwise escalate with the guide's manual steps.
Verify recovery: `curl /api/health`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.guards import hold_target
from flows.outages import escalates_on_outage, raise_if_outage
from flows.parameters import IncidentId, PollSeconds, Seconds, ServiceName, Summary
from flows.record import Record
from flows.targets import base_url, probe_service, target_workload, wait_healthy
from kubeops import KubernetesError
from kubeops.models import Workload
from runbook.models import DEFAULT_SERVICE, Evidence, IncidentRef, RunbookOutcome, RunbookResult
from runbook.severity import Severity
from tasks import runtime
from tasks.database import DbFailure, check_database, restart_supabase_project, wait_for_database
from tasks.kubernetes import set_deployment_env, wait_for_rollout
from tasks.service import reset_db_pool

__all__ = ["MANUAL_STEPS", "database_lost"]

RUNBOOK = "database-lost"

MANUAL_STEPS = (
    "Option 3 (hosted database), by hand: check the Supabase dashboard for alerts; "
    "restart the Supabase compute instance; then verify with `curl /api/health`."
)


@flow(
    name=RUNBOOK, description="P1 › Database Connection Lost: SELECT 1 → reset pool → pool size → provider."
)
@escalates_on_outage
def database_lost(
    service: ServiceName = DEFAULT_SERVICE,
    severity: Severity = Severity.P1,
    summary: Summary = "",
    incident_id: IncidentId = "",
    pool_size: Annotated[int, Field(ge=1, le=1000)] = 10,
    verify_deadline_s: Seconds = 30.0,
    ready_deadline_s: Seconds = 300.0,
    db_restart_deadline_s: Seconds = 300.0,
    poll_interval_s: PollSeconds = 2.0,
    dry_run: bool = False,
    incident: IncidentRef | None = None,
) -> RunbookResult:
    """Database Connection Lost: check, then the guide's three options in order, verifying after each.

    Args:
        service: the service in trouble (in the form: one of the catalogue's services)
        severity: the incident's level when one is opened: P1 critical · P2 high · P3 medium · P4 low
        summary: what is wrong, in a sentence (shown in Slack)
        incident_id: an existing incident's id; empty: open (or join) one for this service and runbook
        pool_size: option 2's DB_POOL_SIZE (the guide: 10)
        verify_deadline_s: how long to wait for /api/health after each option
        ready_deadline_s: how long to wait for the rollout that a pool-size change starts
        db_restart_deadline_s: how long to wait for the database after a provider restart
        poll_interval_s: how often to look while waiting
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
            default_summary="database connection lost",
        ),
        dry_run=dry_run,
    )
    settings = runtime.settings()
    target = target_workload()
    deployment = f"{target.namespace}/deployment/{target.name}"

    # Check database connectivity: psql -c "SELECT 1", and what the application sees
    dsn = settings.database.dsn
    db = check_database(dsn, settings.database.connect_timeout_s) if dsn else None
    if db is None:
        rec.note("assess", "no database DSN configured: judging by /api/health alone")
    else:
        rec.note(
            "assess", f"SELECT 1 on {db.host}: {'ok' if db.ok else db.failure.value} {db.detail}".rstrip()
        )
    app = probe_service()
    rec.add_evidence(Evidence(kind="health", title="before", content=app.summary()))
    rec.note("assess", f"application: {app.summary()}")
    if app.healthy and (db is None or db.ok):
        return rec.finish(RunbookOutcome.RECOVERED_BY_ITSELF, "database answers and /api/health is 200")
    if db is not None and db.failure == DbFailure.AUTH:
        rec.note("decide", "authentication failure: a credentials problem no restart fixes → escalate")
        return rec.finish(RunbookOutcome.ESCALATED, f"database refuses our credentials: {db.detail}")

    def verified(after: str) -> bool:
        probe = wait_healthy(verify_deadline_s, poll_interval_s)
        rec.note("verify", f"after {after}: {probe.summary()}")
        return probe.healthy

    # Option 3 first when the database itself is down: the pool options cannot help until it answers.
    if db is not None and not db.ok:
        ref, token = settings.database.supabase_project_ref, settings.database.supabase_token
        if ref is None or token is None:
            rec.note("decide", f"database unreachable ({db.failure.value}); no provider API configured")
            rec.add_evidence(Evidence(kind="follow-up", title="manual steps", content=MANUAL_STEPS))
            return rec.finish(
                RunbookOutcome.ESCALATED, f"database unreachable ({db.failure.value}); escalated"
            )
        api = str(settings.database.supabase_api_url)
        restart = rec.act(
            "restart-database",
            f"supabase:{ref}",
            lambda: restart_supabase_project(api, ref, token),
            f"Supabase Management API: restart project {ref}",
        )
        if restart.dry_run:
            return rec.finish(RunbookOutcome.RECOVERED, "would restart the database, then reset the pool")
        if restart.error is not None:
            rec.add_evidence(Evidence(kind="follow-up", title="manual steps", content=MANUAL_STEPS))
            return rec.finish(
                RunbookOutcome.ESCALATED, f"the provider's restart failed ({restart.error}); escalated"
            )
        back = wait_for_database(dsn, db_restart_deadline_s, poll_interval_s) if dsn else None
        if back is None or not back.ok:
            rec.note("verify", "database still unreachable after the provider restart")
            rec.add_evidence(Evidence(kind="follow-up", title="manual steps", content=MANUAL_STEPS))
            return rec.finish(RunbookOutcome.ESCALATED, "database still down after restart; escalated")
        # A restarted database leaves the application's pool holding dead connections; if the
        # application does not answer at once, go straight on to option 1 instead of waiting.
        probe = probe_service()
        rec.note("verify", f"after the database restart: {probe.summary()}")
        if probe.healthy:
            return rec.finish(RunbookOutcome.RECOVERED, "database restarted; /api/health 200")

    # Options 1 and 2 change the Deployment: one remediation per target at a time (flows/guards.py)
    with hold_target(
        rec, target, f"database pool of {deployment}: reset, then {settings.database.pool_size_env}"
    ) as hold:
        if hold.waited:  # another remediation held the target: look again from scratch
            again = probe_service()
            rec.note("reassess", f"looked again from scratch after the wait: {again.summary()}")
            if again.healthy:
                return rec.finish(RunbookOutcome.RECOVERED, f"{hold.why()}; healthy now: nothing written")
            if not hold.held:
                return rec.finish(
                    RunbookOutcome.ESCALATED, f"{hold.why()}; still unhealthy, nothing written; escalated"
                )
        return _pool_options(rec, target, pool_size, ready_deadline_s, poll_interval_s, verified)


def _pool_options(
    rec: Record,
    target: Workload,
    pool_size: int,
    ready_deadline_s: float,
    poll_interval_s: float,
    verified: Callable[[str], bool],
) -> RunbookResult:
    """Options 1 and 2, the target's lease held: reset the pool, then scale it (a rollout); verify each."""
    settings = runtime.settings()
    deployment = f"{target.namespace}/deployment/{target.name}"
    # Option 1: restart the connection pool
    s = settings.service
    reset = rec.act(
        "reset-db-pool",
        f"{deployment}:db-pool",
        lambda: reset_db_pool(base_url(), s.reset_pool_path, s.admin_token, s.http_timeout_s),
        f"POST {s.reset_pool_path}",
    )
    if reset.error is not None:
        rec.note("option-1", f"pool reset failed: {reset.error}")
    elif not reset.dry_run and verified("the pool reset"):
        return rec.finish(RunbookOutcome.RECOVERED, "connection pool reset; /api/health 200")

    # Option 2: scale the pool (DB_POOL_SIZE=10), which rolls the pods
    env_name = settings.database.pool_size_env
    resize = rec.act(
        "set-pool-size",
        f"{deployment}:{env_name}",
        lambda: set_deployment_env(target, {env_name: str(pool_size)}),
        f"kubectl set env deployment/{target.name} {env_name}={pool_size}",
    )
    raise_if_outage(resize.error)  # the cluster cannot be changed: escalated, naming it (flows/outages.py)
    if resize.dry_run:
        return rec.finish(RunbookOutcome.RECOVERED, "would reset the pool, then set the pool size if needed")
    if resize.error is None:
        try:
            status = wait_for_rollout(target, deadline_s=ready_deadline_s, poll_interval_s=poll_interval_s)
            rec.note("option-2", f"rollout: {status.message}")
        except KubernetesError as exc:
            rec.note("option-2", f"rollout did not complete: {exc}")
        if verified(f"{env_name}={pool_size}"):
            return rec.finish(RunbookOutcome.RECOVERED, f"{env_name}={pool_size} rolled out; /api/health 200")
    rec.add_evidence(Evidence(kind="follow-up", title="manual steps", content=MANUAL_STEPS))
    return rec.finish(
        RunbookOutcome.ESCALATED, "pool reset and pool size did not restore /api/health; escalated"
    )
