"""Guide: P2 › Common P2 Issues › Feature Broken (but app functional). Example: users can't create
journal entries.

Steps: 1. isolate the issue (all users or specific? which operation: create/read/update/delete? — the
failing endpoint from the service's metrics, the failing operation from Sentry's culprit, a read probe
of the same endpoint); 2. check the relevant component (API endpoint, service, database table,
permissions/RLS — from the error Sentry groups); 3. apply a minimal fix (check for recent code changes,
verify the database state, check for constraint violations, review the error logs); 4. if not obvious →
rollback.

Conclusions (the `conclusion` evidence of the result):
- `not_reproduced`: no endpoint is failing now → recovered by itself.
- `deploy_regression`: the live revision was deployed within the window → the minimal fix is the
  rollback (step 4), verified.
- `database_table`: the error is the database's (a constraint violation, a missing relation or
  column); the table is described to show what the code expects and what exists → escalated for a
  schema/data fix (a migration), with the evidence.
- `permissions`: permission denied / row-level security → escalated (policy change).
- `api_endpoint`: the route answers 404/405 → escalated (routing/config).
- `service_code`: an error in the service's own code, no deploy to roll back → escalated for a hotfix.
As with the error-rate spike, "if not obvious → rollback" needs a correlated deploy: rolling back a
release older than the breakage cannot remove its cause, so without one the flow escalates.
"""

from __future__ import annotations

import re

import psycopg
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field, SecretStr

from flows.diagnoses import (
    METRICS_PATH,
    conclude,
    metrics_evidence,
    split_route,
)
from flows.outages import escalates_on_outage
from flows.parameters import IncidentId, PollSeconds, RollbackWindowMin, Seconds, ServiceName, Summary
from flows.record import Record
from flows.steps import read_logs, recent_deploys, rollback_and_verify, sentry_evidence
from flows.targets import base_url, target_workload
from runbook.models import DEFAULT_SERVICE, Evidence, IncidentRef, RunbookOutcome, RunbookResult
from runbook.severity import Severity
from tasks import runtime
from tasks.health import probe_url

__all__ = [
    "TableColumn",
    "TableConstraint",
    "TableState",
    "component_of",
    "describe_table",
    "feature_broken",
    "operation_of",
]

RUNBOOK = "feature-broken"

_OPERATIONS = (
    ("create", ("create", "insert", "post", "add")),
    ("update", ("update", "patch", "edit", "put")),
    ("delete", ("delete", "remove", "destroy")),
    ("read", ("read", "list", "get", "show", "fetch")),
)


_METHODS = {"POST": "create", "GET": "read", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


def operation_of(culprit: str, title: str = "", method: str = "") -> str:
    """create/read/update/delete: from the failing request's method, else the failing function's name
    (Sentry culprit), else 'unknown'."""
    if method.upper() in _METHODS:
        return _METHODS[method.upper()]
    words = f"{culprit} {title}".lower()
    for operation, hints in _OPERATIONS:
        if any(h in words for h in hints):
            return operation
    return "unknown"


def component_of(error: str) -> str:
    """Which component the error names: database_table, permissions, api_endpoint or service_code."""
    text = error.lower()
    if any(
        w in text
        for w in ("permission denied", "row-level security", "row level security", "rls", "forbidden")
    ):
        return "permissions"
    if any(
        w in text for w in ("violates", "constraint", "relation", "column", "undefinedtable", "duplicate key")
    ):
        return "database_table"
    if any(w in text for w in ("not found", "method not allowed", " 404", " 405")):
        return "api_endpoint"
    return "service_code"


class TableColumn(BaseModel):
    name: str
    data_type: str
    nullable: bool


class TableConstraint(BaseModel):
    name: str
    definition: str
    validated: bool


class TableState(BaseModel):
    """What the database holds for one table: its columns and constraints."""

    table: str
    columns: list[TableColumn] = Field(default_factory=list)
    constraints: list[TableConstraint] = Field(default_factory=list)

    @property
    def exists(self) -> bool:
        return bool(self.columns)


@task(name="describe_table", cache_policy=NO_CACHE)
def describe_table(dsn: SecretStr, table: str, connect_timeout_s: float = 5.0) -> TableState:
    """Columns and constraints of `table` (catalog reads only): "verify database state"."""
    with psycopg.connect(
        dsn.get_secret_value(), connect_timeout=max(1, round(connect_timeout_s)), autocommit=True
    ) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        constraints = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint"
            " WHERE conrelid = to_regclass(%s) ORDER BY conname",
            (table,),
        ).fetchall()
    return TableState(
        table=table,
        columns=[TableColumn(name=r[0], data_type=r[1], nullable=r[2] == "YES") for r in columns],
        constraints=[TableConstraint(name=r[0], definition=r[1], validated=bool(r[2])) for r in constraints],
    )


@flow(name=RUNBOOK, description="P2 › Feature Broken: isolate, component, minimal fix, else rollback.")
@escalates_on_outage
def feature_broken(
    service: ServiceName = DEFAULT_SERVICE,
    severity: Severity = Severity.P2,
    summary: Summary = "",
    incident_id: IncidentId = "",
    window_s: Seconds = 300.0,
    rollback_window_min: RollbackWindowMin = 15,
    ready_deadline_s: Seconds = 300.0,
    poll_interval_s: PollSeconds = 2.0,
    metrics_path: str = METRICS_PATH,
    dry_run: bool = False,
    incident: IncidentRef | None = None,
) -> RunbookResult:
    """Feature Broken (but app functional): who, which operation, which component; minimal fix or rollback.

    Args:
        service: the service in trouble (in the form: one of the catalogue's services)
        severity: the incident's level when one is opened: P1 critical · P2 high · P3 medium · P4 low
        summary: what is wrong, in a sentence (shown in Slack)
        incident_id: an existing incident's id; empty: open (or join) one for this service and runbook
        window_s: the metrics window read (seconds of traffic)
        rollback_window_min: a deploy this recent (minutes) is the first suspect (the guide: 15)
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
            default_summary="feature broken",
        ),
        dry_run=dry_run,
    )
    target = target_workload()
    settings = runtime.settings()

    # 1. Isolate the issue: which endpoint, which operation, which users
    metrics = metrics_evidence(rec, window_s, metrics_path)
    failing = metrics.failing_routes()
    issues = sentry_evidence(rec, "assess")
    if not failing and not issues:
        conclude(
            rec, "not_reproduced", f"no endpoint failing over the last {window_s:g} s and no Sentry issue"
        )
        return rec.finish(RunbookOutcome.RECOVERED_BY_ITSELF, "no failing endpoint now")
    route, stats = failing[0] if failing else ("unknown", None)
    method, endpoint = split_route(route) if failing else ("", "unknown")
    top = issues[0] if issues else None
    error = f"{top.title}" if top else "no Sentry issue"
    operation = operation_of(top.culprit if top else "", top.title if top else "", method)
    read = (
        probe_url(base_url() + endpoint, settings.service.http_timeout_s)
        if endpoint.startswith("/") and method != "GET"
        else None
    )
    reads = (
        "reads work"
        if read is not None and read.ok
        else "reads fail too"
        if read is not None
        else "reads not probed"
    )
    users = (
        f"{top.user_count} users"
        if top and top.user_count
        else "all users (the errors are not tied to particular users)"
    )
    share = f"{stats.errors} of {stats.requests} requests ({stats.error_rate_pct:g}%)" if stats else "?"
    others = ", ".join(r for r, _ in failing[1:4])
    rec.note(
        "isolate",
        f"1. {route}: {operation} fails for {users}; {share} failing in {window_s:g} s; {reads}"
        + (f" ({read.line()})" if read else "")
        + (f"; also failing: {others}" if others else "; no other endpoint failing"),
    )

    # 2. Check the relevant component
    component = component_of(f"{error} {top.culprit if top else ''}")
    rec.note("component", f"2. component: {component.replace('_', ' ')} ({error})")

    # 3. Minimal fix: recent code changes, database state, constraint violations, error logs
    deploy = recent_deploys(rec, target, rollback_window_min)
    findings = _database_state(rec, error) if component == "database_table" else []
    logs = read_logs(
        rec, target, "investigate", grep=re.escape(endpoint) if endpoint != "unknown" else "error"
    )
    if logs is not None:
        rec.add_evidence(
            Evidence(
                kind="logs",
                title=f"log lines about {endpoint}",
                content="\n".join(logs.matches[-20:]) or "(none)",
            )
        )
    details = {
        "endpoint": route,
        "operation": operation,
        "users": users,
        "component": component,
        "error": error,
        "reads": reads,
    }
    if deploy.can_roll_back and deploy.previous is not None and deploy.current is not None:
        conclude(
            rec,
            "deploy_regression",
            f"{operation} on {endpoint} broke with revision {deploy.current.revision}: the minimal fix is the rollback",
            data=details,
        )
        return rollback_and_verify(
            rec, target, deploy, ready_deadline_s=ready_deadline_s, poll_interval_s=poll_interval_s
        )

    # 4. Not obvious → rollback, which needs a deploy to roll back: otherwise escalate with the evidence
    why = {
        "database_table": "a schema or data fix (a migration) is needed",
        "permissions": "a permission/RLS policy change is needed",
        "api_endpoint": "routing or configuration of the endpoint is needed",
        "service_code": "a hotfix of the service's code is needed",
    }[component]
    conclude(
        rec,
        component,
        f"{operation} on {endpoint} fails for {users} ({reads}): {error}; {'; '.join(findings) + '; ' if findings else ''}"
        f"no deploy in the last {rollback_window_min} min to roll back: {why}",
        data={**details, "findings": findings},
    )
    return rec.finish(
        RunbookOutcome.ESCALATED,
        f"{endpoint} {operation} broken ({component.replace('_', ' ')}): {why}; escalated",
    )


def _database_state(rec: Record, error: str) -> list[str]:
    """Verify the database state for the relation, column and constraint the error names (read-only)."""
    table = re.search(r'relation "([A-Za-z_][A-Za-z0-9_]*)"', error)
    column = re.search(r'column "([A-Za-z_][A-Za-z0-9_]*)"', error)
    constraint = re.search(r'constraint "([A-Za-z_][A-Za-z0-9_]*)"', error)
    dsn = runtime.settings().database.dsn
    findings: list[str] = []
    if "violates" in error or "constraint" in error.lower():
        findings.append(f"constraint violation: {error.split(': ', 1)[-1]}")
    if table is None or dsn is None:
        return findings
    try:
        state = describe_table(dsn, table.group(1), runtime.settings().database.connect_timeout_s)
    except psycopg.Error as exc:
        rec.note("investigate", f"database state unavailable: {type(exc).__name__}")
        return findings
    rec.add_evidence(
        Evidence(
            kind="database",
            title=f"table {state.table}",
            content="\n".join(
                [f"{c.name} {c.data_type} {'NULL' if c.nullable else 'NOT NULL'}" for c in state.columns]
                + [f"CONSTRAINT {c.name} {c.definition}" for c in state.constraints]
            ),
        )
    )
    if not state.exists:
        findings.append(f"table {state.table} does not exist")
    if column is not None and state.exists:
        found = next((c for c in state.columns if c.name == column.group(1)), None)
        if found is None:
            findings.append(
                f"the code writes column {column.group(1)!r}, which table {state.table} does not have "
                "(the schema is out of step with the code: a missing migration)"
            )
        elif not found.nullable:
            findings.append(f"column {column.group(1)!r} is NOT NULL and the code sends no value for it")
    named = next((c for c in state.constraints if constraint and c.name == constraint.group(1)), None)
    if named is not None:
        late = " added NOT VALID (existing rows unchecked: a recent migration)" if not named.validated else ""
        findings.append(f"constraint {named.name} is {named.definition}{late}; the code does not satisfy it")
    rec.note("investigate", "3. database state: " + ("; ".join(findings) or "as expected"))
    return findings
