"""What the diagnoses share (the P2 diagnosis flows, and respond's P1 assessment and P2 step 1): the
service's metrics, infrastructure (logs, database, CPU/memory) and the documented conclusion.

Usage (inside a diagnosis flow)::

    metrics = read_metrics(window_s=300)                 # ServiceMetrics: overall and per route
    metrics = metrics_evidence(rec, window_s=300)        # the same, attached as the incident evidence
    infra = check_infrastructure(rec, target)            # logs, database, CPU/memory
    conclude(rec, "code_defect", "...", options=[...])   # the documented conclusion, as evidence

Sentry's grouping and deployment correlation are flows/steps.py's `sentry_evidence` and `recent_deploys`
(the service-down runbook uses them too).

Guide: P2 - High Severity Response › Common P2 Issues. Each diagnosis flow (error_rate_spike,
performance_degradation, feature_broken) ends with one *conclusion* from a fixed list, recorded as the
`conclusion` evidence of its `RunbookResult` (`conclusion_of(result)` reads it back), with the reason
and the fix options considered.

Every read is of the incident's service (bound by `Record.open`, tasks/runtime.py): its metrics
endpoint, its Deployment's logs and pods, its database (none catalogued: not checked).

The metrics come from the service's own metrics endpoint (`GET {base_url}/metrics?window_s=N`, JSON:
requests, errors, error_rate_pct, p95_ms, and the same per route), the sandbox service's format.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, Field

from flows.record import Record
from flows.steps import read_logs
from flows.targets import base_url
from kubeops import KubernetesError
from kubeops.models import Workload
from runbook.errors import RunbookError
from runbook.models import Evidence, RunbookResult, utc_now
from tasks import runtime
from tasks.database import DbCheck, check_database
from tasks.kubernetes import (
    top_nodes,
    top_pods,
)

__all__ = [
    "METRICS_PATH",
    "Infrastructure",
    "MetricsUnavailable",
    "RouteMetrics",
    "ServiceMetrics",
    "check_infrastructure",
    "conclude",
    "conclusion_of",
    "get_service_metrics",
    "metrics_evidence",
    "read_metrics",
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

    def slow_routes(self, threshold_ms: float) -> list[tuple[str, RouteMetrics]]:
        slow = [(r, m) for r, m in self.routes.items() if m.p95_ms > threshold_ms]
        return sorted(slow, key=lambda p: -p[1].p95_ms)

    def line(self) -> str:
        return (
            f"{self.requests} requests, {self.errors} errors ({self.error_rate_pct:g}%), "
            f"p95 {self.p95_ms:g} ms over {self.window_s:g} s"
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


def metrics_evidence(rec: Record, window_s: float, path: str = METRICS_PATH) -> ServiceMetrics:
    """Step 1 of a diagnosis: which endpoint is failing; the metrics read, attached as evidence."""
    metrics = read_metrics(window_s, path)
    rec.add_evidence(
        Evidence(
            kind="metrics",
            title="service metrics",
            content=metrics.line(),
            data=metrics.model_dump(mode="json"),
        )
    )
    return metrics


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
    logs = read_logs(
        rec, target, "assess", tail_lines=log_lines, grep=r"error|exception|fatal|memory|OutOfMemory"
    )
    if logs is not None:
        infra.error_lines = [line for line in logs.matches if "memory" not in line.lower()][-20:]
        infra.oom_lines = [line for line in logs.matches if "memory" in line.lower()][-20:]
        rec.add_evidence(
            Evidence(
                kind="logs",
                title=f"errors in the last {log_lines} lines of {logs.pod}",
                content="\n".join(logs.matches[-40:]) or "(none)",
            )
        )
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
