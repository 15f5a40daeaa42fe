"""What the three P2 diagnoses share: the service's metrics, Sentry's grouping, infrastructure and deploys.

Usage (inside a diagnosis flow)::

    metrics = read_metrics(window_s=300)                 # ServiceMetrics: overall and per route
    issues = sentry_grouping(rec)                        # Sentry's unresolved issues, top first
    infra = check_infrastructure(rec, target)            # logs, database, CPU/memory
    deploy = deploy_correlation(rec, target, window_min=15)
    conclude(rec, "code_defect", "...", options=[...])   # the documented conclusion, as evidence

Guide: P2 - High Severity Response › Common P2 Issues. Each diagnosis flow (error_rate_spike,
performance_degradation, feature_broken) ends with one *conclusion* from a fixed list, recorded as the
`conclusion` evidence of its `RunbookResult` (`conclusion_of(result)` reads it back), with the reason
and the fix options considered.

The metrics come from the service's own metrics endpoint (`GET {base_url}/metrics?window_s=N`, JSON:
requests, errors, error_rate_pct, p95_ms, and the same per route), the sandbox service's format.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from flows.record import Record
from flows.targets import base_url, probe_service
from kubeops import KubernetesError
from kubeops.models import Revision, Workload
from runbook.errors import RunbookError
from runbook.models import Evidence, RunbookOutcome, RunbookResult, utc_now
from runbook.policy import deployed_recently
from tasks import runtime
from tasks.database import DbCheck, check_database
from tasks.kubernetes import (
    get_deployment_logs,
    get_rollout_history,
    rollout_undo,
    top_nodes,
    top_pods,
    wait_for_rollout,
)
from tasks.retry import backoff, retry_if_transient
from tasks.sentry import SentryFailed, SentryIssueSummary, get_latest_event, list_unresolved_issues

__all__ = [
    "METRICS_PATH",
    "DeployCorrelation",
    "Infrastructure",
    "MetricsUnavailable",
    "RouteMetrics",
    "ServiceMetrics",
    "check_infrastructure",
    "conclude",
    "conclusion_of",
    "deploy_correlation",
    "get_service_metrics",
    "read_metrics",
    "rollback_and_verify",
    "sentry_grouping",
    "split_route",
]

METRICS_PATH = "/metrics"
SATURATED_PCT = 90.0
"""CPU or memory at or above this share of a node is "pressure" for a P2 (P1 is 100% sustained)."""


class MetricsUnavailable(RunbookError):
    """The service's metrics endpoint did not answer with metrics."""

    transient = True


class RouteMetrics(BaseModel):
    requests: int = 0
    errors: int = 0
    error_rate_pct: float = 0.0
    p95_ms: float = 0.0


class ServiceMetrics(RouteMetrics):
    """Requests, errors, error rate and p95 over the last `window_s` seconds, overall and per route."""

    window_s: float
    routes: dict[str, RouteMetrics] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utc_now)

    def failing_routes(self) -> list[tuple[str, RouteMetrics]]:
        """Routes (`"POST /api/journal"`) with errors, the highest error rate first."""
        failing = [(r, m) for r, m in self.routes.items() if m.errors]
        return sorted(failing, key=lambda p: (-p[1].error_rate_pct, -p[1].errors, p[0]))

    def worst_by_errors(self) -> tuple[str, RouteMetrics] | None:
        failing = self.failing_routes()
        return failing[0] if failing else None

    def slow_routes(self, threshold_ms: float) -> list[tuple[str, RouteMetrics]]:
        slow = [(r, m) for r, m in self.routes.items() if m.p95_ms > threshold_ms]
        return sorted(slow, key=lambda p: -p[1].p95_ms)

    def line(self) -> str:
        return (
            f"{self.requests} requests, {self.errors} errors ({self.error_rate_pct:g}%), "
            f"p95 {self.p95_ms:g} ms over {self.window_s:g} s"
        )


@task(
    name="get_service_metrics",
    retries=2,
    retry_delay_seconds=backoff(1.0),
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def split_route(route: str) -> tuple[str, str]:
    """`"POST /api/journal"` → ("POST", "/api/journal"); a bare path is a GET."""
    method, _, path = route.partition(" ")
    return (method.upper(), path) if path else ("GET", method)


def get_service_metrics(
    url: str, path: str = METRICS_PATH, window_s: float = 300.0, timeout_s: float = 5.0
) -> ServiceMetrics:
    """The service's metrics over the last `window_s` seconds (a read: retried when transient)."""
    try:
        response = httpx.get(
            f"{url.rstrip('/')}{path}",
            params={"window_s": window_s},
            headers={"Accept": "application/json"},
            timeout=timeout_s,
        )
    except httpx.TransportError as exc:
        raise MetricsUnavailable(f"GET {path}: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise MetricsUnavailable(f"GET {path} → {response.status_code}")
    try:
        return ServiceMetrics.model_validate(response.json())
    except ValueError as exc:
        err = MetricsUnavailable(f"GET {path}: not metrics: {exc}"[:300])
        err.transient = False
        raise err from exc


def read_metrics(window_s: float, path: str = METRICS_PATH) -> ServiceMetrics:
    return get_service_metrics(base_url(), path, window_s, runtime.settings().service.http_timeout_s)


# --- Sentry grouping --------------------------------------------------------------------------------------


def sentry_grouping(rec: Record, limit: int = 5) -> list[SentryIssueSummary]:
    """Sentry's unresolved issues, most recent first, as evidence; [] when Sentry is not configured/down."""
    sentry = runtime.settings().sentry
    if sentry.token is None:
        rec.note("assess", "Sentry not configured (no token): grouping skipped")
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
        rec.note("assess", f"Sentry unavailable: {exc}")
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
            rec.note("assess", f"Sentry latest event unavailable: {exc}")
    return issues


# --- code or infrastructure -------------------------------------------------------------------------------


class Infrastructure(BaseModel):
    """Step 2 of the error-rate diagnosis: logs, database connections, memory/CPU."""

    error_lines: list[str] = Field(default_factory=list)
    oom_lines: list[str] = Field(default_factory=list)
    database: DbCheck | None = None
    cpu_pct: float | None = None
    memory_pct: float | None = None

    @property
    def database_down(self) -> bool:
        return self.database is not None and not self.database.ok

    @property
    def saturated(self) -> bool:
        high = [v for v in (self.cpu_pct, self.memory_pct) if v is not None and v >= SATURATED_PCT]
        return bool(high) or bool(self.oom_lines)

    def line(self) -> str:
        db = (
            "not checked"
            if self.database is None
            else ("ok" if self.database.ok else self.database.failure.value)
        )
        cpu = f"{self.cpu_pct:.0f}%" if self.cpu_pct is not None else "?"
        mem = f"{self.memory_pct:.0f}%" if self.memory_pct is not None else "?"
        return (
            f"database {db}; CPU {cpu}, memory {mem} (busiest node); "
            f"{len(self.error_lines)} error and {len(self.oom_lines)} out-of-memory lines in the logs"
        )


def check_infrastructure(rec: Record, target: Workload, log_lines: int = 100) -> Infrastructure:
    """Logs for errors, the database connection, memory/CPU: each source optional, each noted."""
    infra = Infrastructure()
    try:
        logs = get_deployment_logs(
            target, tail_lines=log_lines, grep=r"error|exception|fatal|memory|OutOfMemory"
        )
        infra.error_lines = [line for line in logs.matches if "memory" not in line.lower()][-20:]
        infra.oom_lines = [line for line in logs.matches if "memory" in line.lower()][-20:]
        rec.add_evidence(
            Evidence(
                kind="logs",
                title=f"errors in the last {log_lines} lines of {logs.pod}",
                content="\n".join(logs.matches[-40:]) or "(none)",
            )
        )
    except KubernetesError as exc:
        rec.note("assess", f"logs unavailable: {exc}")
    settings = runtime.settings()
    if settings.database.dsn is not None:
        infra.database = check_database(settings.database.dsn, settings.database.connect_timeout_s)
    try:
        nodes = top_nodes()
        cpu = [n.cpu_pct for n in nodes if n.cpu_pct is not None]
        mem = [n.memory_pct for n in nodes if n.memory_pct is not None]
        infra.cpu_pct = max(cpu) if cpu else None
        infra.memory_pct = max(mem) if mem else None
        pods = top_pods(target.namespace, sort_by="memory")
        rec.add_evidence(
            Evidence(
                kind="metrics",
                title="kubectl top pods / nodes",
                content="\n".join(
                    [f"{p.name}  {p.cpu_millicores}m  {p.memory_bytes / 2**20:.0f}Mi" for p in pods]
                    + [f"{n.name}  cpu {n.cpu_pct or 0:.0f}%  memory {n.memory_pct or 0:.0f}%" for n in nodes]
                ),
            )
        )
    except KubernetesError as exc:
        rec.note("assess", f"metrics unavailable: {exc}")
    rec.note("assess", f"infrastructure: {infra.line()}")
    return infra


# --- deployment correlation -------------------------------------------------------------------------------


class DeployCorrelation(BaseModel):
    current: Revision | None = None
    previous: Revision | None = None
    recent: bool = False
    window_min: int = 15

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


def deploy_correlation(rec: Record, target: Workload, window_min: int = 15) -> DeployCorrelation:
    """ "Was code deployed recently?": the live revision's age against the window (the guide: 15 min)."""
    try:
        history = get_rollout_history(target)
    except KubernetesError as exc:
        rec.note("assess", f"rollout history unavailable: {exc}")
        return DeployCorrelation(window_min=window_min)
    current = next((r for r in history if r.current), None)
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
                f"{r.revision:>4}  {r.created_at:%Y-%m-%d %H:%M:%S}  {', '.join(r.images)}{'  (live)' if r.current else ''}"
                for r in history
                if r.created_at
            ),
        )
    )
    rec.note("assess", f"deployment correlation: {found.line(now)}")
    return found


def rollback_and_verify(
    rec: Record, target: Workload, deploy: DeployCorrelation, ready_deadline_s: float, poll_interval_s: float
) -> RunbookResult:
    """Fix option d) / "If not obvious → Rollback": undo to the previous revision (once), wait, verify."""
    assert deploy.current is not None and deploy.previous is not None
    plan = (
        f"kubectl rollout undo deployment/{target.name}: revision {deploy.current.revision} → "
        f"{deploy.previous.revision}"
    )
    done = rec.act(
        "rollback", f"{target.namespace}/deployment/{target.name}", lambda: rollout_undo(target), plan
    )
    if done.dry_run:
        return rec.finish(RunbookOutcome.ROLLED_BACK, plan)
    if done.error is not None:
        return rec.finish(RunbookOutcome.ESCALATED, f"rollback failed: {done.error}; escalated")
    try:
        status = wait_for_rollout(target, deadline_s=ready_deadline_s, poll_interval_s=poll_interval_s)
        rec.note("verify", f"rollout: {status.message}")
    except KubernetesError as exc:
        rec.note("verify", f"rollout did not complete: {exc}")
    probe = probe_service()
    rec.note("verify", probe.summary())
    if probe.healthy:
        verb = "rolled back" if done.ok else "already rolled back by another run of this incident"
        return rec.finish(
            RunbookOutcome.ROLLED_BACK, f"{verb} to revision {deploy.previous.revision}; health verified"
        )
    return rec.finish(
        RunbookOutcome.ESCALATED,
        f"still unhealthy after the rollback to {deploy.previous.revision}; escalated",
    )


# --- the conclusion ---------------------------------------------------------------------------------------


def conclude(
    rec: Record,
    conclusion: str,
    reason: str,
    *,
    options: list[str] | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Record the diagnosis's conclusion (one of its documented values), why, and the options weighed."""
    rec.add_evidence(
        Evidence(
            kind="conclusion",
            title=f"conclusion: {conclusion}",
            content="\n".join([reason, *(options or [])]),
            data={"conclusion": conclusion, "reason": reason, "options": options or [], **(data or {})},
        )
    )
    rec.note("conclusion", f"{conclusion}: {reason}", evidence={"conclusion": conclusion, **(data or {})})


def conclusion_of(result: RunbookResult) -> str | None:
    """The conclusion a diagnosis flow reached (None for a runbook that records none)."""
    for item in reversed(result.evidence):
        if item.kind == "conclusion" and item.data:
            return str(item.data.get("conclusion"))
    return None
