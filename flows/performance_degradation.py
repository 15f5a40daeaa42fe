"""Guide: P2 › Common P2 Issues › Performance Degradation (P95 > 3s).

Investigation: 1. which endpoints are slow (p95 per route, from the service's metrics); 2. consistent
or intermittent (the metrics read `samples` times, `sample_interval_s` apart: "watch metrics in
real-time"); 3. correlate with other events: database query changes, external API latency, memory
pressure, network saturation. Then the guide's solutions (increase cache TTL, optimize slow query,
scale horizontally, reduce data payload size, enable database connection pooling): the one an
automaton can apply safely, scaling out, is applied for memory pressure; the others go to a person.

Conclusions (the `conclusion` evidence of the result), checked in this order:
- `not_reproduced`: no sample over the threshold → recovered by itself.
- `memory_pressure`: memory (or CPU) >= 90% of a node, or out-of-memory lines → scale horizontally
  (`replicas`, never below the current count), verify.
- `network_saturation`: `/health` itself (no work behind it) answers slower than `network_ms`.
- `external_api_latency`: an external API the service calls answers slower than `api_slow_ms` or not
  at all.
- `database_query`: the slow endpoints do database work while `/health`, the external APIs and memory
  are fine; the statements the database has been running for longer than `slow_query_ms`
  (`pg_stat_activity`, watched between the samples) name the slow query when one is caught in flight; a slow
  `SELECT 1` makes it the database itself → "Optimize slow query" / "Enable database connection
  pooling": escalated with the evidence.
Each conclusion also says `consistent` or `intermittent` (how many samples were over the threshold).
"""

from __future__ import annotations

import re
import time
from typing import Annotated

import psycopg
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field, SecretStr

from flows.diagnoses import METRICS_PATH, ServiceMetrics, check_infrastructure, conclude, read_metrics
from flows.outages import escalates_on_outage
from flows.parameters import IncidentId, PollSeconds, Seconds, ServiceName, Summary
from flows.record import Record
from flows.resource_exhaustion import resource_exhaustion
from flows.targets import probe_service, target_workload
from runbook.models import DEFAULT_SERVICE, Evidence, IncidentRef, RunbookOutcome, RunbookResult
from runbook.severity import Severity
from tasks import runtime
from tasks.external_apis import check_external_api

__all__ = ["SOLUTIONS", "SlowQuery", "performance_degradation", "watch_slow_queries"]

RUNBOOK = "performance-degradation"

SOLUTIONS = (
    "Increase cache TTL",
    "Optimize slow query",
    "Scale horizontally",
    "Reduce data payload size",
    "Enable database connection pooling",
)


class SlowQuery(BaseModel):
    query: str
    running_ms: float


_ACTIVITY = (
    "SELECT query, EXTRACT(EPOCH FROM clock_timestamp() - query_start) * 1000 FROM pg_stat_activity"
    " WHERE state = 'active' AND pid <> pg_backend_pid() AND datname = current_database()"
    " AND query_start IS NOT NULL AND clock_timestamp() - query_start > make_interval(secs => %s)"
)


@task(name="watch_slow_queries", cache_policy=NO_CACHE)
def watch_slow_queries(
    dsn: SecretStr,
    min_ms: float,
    duration_s: float = 0.0,
    poll_s: float = 0.1,
    connect_timeout_s: float = 5.0,
) -> list[SlowQuery]:
    """Statements the database runs for longer than `min_ms`, looked at every `poll_s` for `duration_s`
    (at least once) on one read-only connection (`pg_stat_activity`, ours excluded): "Database query
    changes?" seen from the database's side. Each statement once, with the longest time seen."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + duration_s
    try:
        with psycopg.connect(
            dsn.get_secret_value(), connect_timeout=max(1, round(connect_timeout_s)), autocommit=True
        ) as conn:
            while True:
                for query, ms in conn.execute(_ACTIVITY, (min_ms / 1000,)).fetchall():
                    seen[str(query)[:500]] = max(seen.get(str(query)[:500], 0.0), float(ms))
                if time.monotonic() + poll_s > deadline:
                    break
                time.sleep(poll_s)
    except psycopg.Error as exc:
        # an unreachable database is the database check's finding, not this one's: noted, not raised
        get_run_logger().warning("pg_stat_activity unavailable: %s", type(exc).__name__)
    return [SlowQuery(query=q, running_ms=ms) for q, ms in seen.items()]


def _short(query: str) -> str:
    return re.sub(r"\s+", " ", query).strip()[:120]


@flow(
    name=RUNBOOK,
    description="P2 › Performance Degradation: slow endpoints, consistent?, correlate → solution.",
)
@escalates_on_outage
def performance_degradation(
    service: ServiceName = DEFAULT_SERVICE,
    severity: Severity = Severity.P2,
    summary: Summary = "",
    incident_id: IncidentId = "",
    threshold_ms: Annotated[float, Field(gt=0, le=600_000)] = 3000.0,
    samples: Annotated[int, Field(ge=1, le=120)] = 5,
    sample_interval_s: Annotated[float, Field(ge=0, le=600)] = 10.0,
    window_s: Seconds = 60.0,
    network_ms: Annotated[float, Field(gt=0, le=60_000)] = 1000.0,
    api_slow_ms: Annotated[float, Field(gt=0, le=60_000)] = 1000.0,
    slow_query_ms: Annotated[float, Field(gt=0, le=600_000)] = 1000.0,
    replicas: Annotated[int, Field(ge=1, le=100)] = 3,
    poll_interval_s: PollSeconds = 2.0,
    metrics_path: str = METRICS_PATH,
    dry_run: bool = False,
    incident: IncidentRef | None = None,
) -> RunbookResult:
    """Performance Degradation (P95 > 3s): which endpoints, consistent or intermittent, correlated with what.

    Args:
        service: the service in trouble (in the form: one of the catalogue's services)
        severity: the incident's level when one is opened: P1 critical · P2 high · P3 medium · P4 low
        summary: what is wrong, in a sentence (shown in Slack)
        incident_id: an existing incident's id; empty: open (or join) one for this service and runbook
        threshold_ms: a p95 above this is degraded (the guide: 3 s)
        samples: how many times to read the metrics (watching in real time)
        sample_interval_s: the time between two readings
        window_s: each reading covers this many seconds of traffic
        network_ms: /health slower than this means the network path is saturated
        api_slow_ms: an external API slower than this is a latency source
        slow_query_ms: a statement the database has been running longer than this is a slow query
        replicas: scale to this many replicas under memory pressure (never below the current count)
        poll_interval_s: how often to look while waiting for new pods
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
            default_summary="performance degradation",
        ),
        dry_run=dry_run,
    )
    target = target_workload()

    # 1-2. Which endpoints are slow; consistent or intermittent? (and what the database is running)
    settings = runtime.settings()
    readings: list[ServiceMetrics] = []
    queries: dict[str, float] = {}
    for i in range(samples):
        readings.append(read_metrics(window_s, metrics_path))
        wait = sample_interval_s if i + 1 < samples else 0.0
        if settings.database.dsn is None:
            time.sleep(wait)
            continue
        # between two readings, watch what the database is running
        for query in watch_slow_queries(
            settings.database.dsn,
            slow_query_ms,
            wait,
            min(0.1, wait or 0.1),
            settings.database.connect_timeout_s,
        ):
            queries[query.query] = max(queries.get(query.query, 0.0), query.running_ms)
    over = [m for m in readings if m.p95_ms > threshold_ms or m.slow_routes(threshold_ms)]
    slow: dict[str, float] = {}
    for reading in readings:
        for route, m in reading.slow_routes(threshold_ms):
            slow[route] = max(slow.get(route, 0.0), m.p95_ms)
    rec.add_evidence(
        Evidence(
            kind="metrics",
            title=f"{samples} samples of {metrics_path}",
            content="\n".join(f"{m.at:%H:%M:%S}  {m.line()}" for m in readings),
            data={"samples": [m.model_dump(mode="json") for m in readings]},
        )
    )
    pattern = "consistent" if len(over) == len(readings) else "intermittent"
    where = ", ".join(f"{r} (p95 {ms:g} ms)" for r, ms in sorted(slow.items(), key=lambda p: -p[1])) or "none"
    rec.note(
        "assess",
        f"1. slow endpoints: {where}; 2. {len(over)} of {len(readings)} samples over {threshold_ms:g} ms",
    )
    details = {
        "pattern": pattern,
        "slow_endpoints": slow,
        "samples_over": len(over),
        "samples": len(readings),
    }
    if not over:
        conclude(rec, "not_reproduced", f"no sample over {threshold_ms:g} ms", data=details)
        return rec.finish(
            RunbookOutcome.RECOVERED_BY_ITSELF, f"p95 under {threshold_ms:g} ms in every sample"
        )
    rec.note("assess", f"2. {pattern}: {len(over)} of {len(readings)} samples over the threshold")

    # 3. Correlate with other events: memory, network, external APIs, database
    infra = check_infrastructure(rec, target)
    probe = probe_service()
    if queries:
        rec.add_evidence(
            Evidence(
                kind="database",
                title="queries running longer than the threshold (pg_stat_activity)",
                content="\n".join(
                    f"{ms:>8.0f} ms  {q}" for q, ms in sorted(queries.items(), key=lambda p: -p[1])
                ),
            )
        )
    apis = [
        check_external_api(a.name, str(a.health_url), settings.service.http_timeout_s)
        for a in settings.external_apis
    ]
    slow_apis = [a for a in apis if not a.up or a.probe.latency_ms > api_slow_ms]
    db_ms = infra.database.latency_ms if infra.database is not None else None
    rec.note(
        "assess",
        f"3. memory {infra.memory_pct or 0:.0f}%, CPU {infra.cpu_pct or 0:.0f}%; /health {probe.health.latency_ms:.0f} ms; "
        f"external APIs: {', '.join(f'{a.name} {a.probe.latency_ms:.0f} ms' for a in apis) or 'none'}; "
        f"SELECT 1: {f'{db_ms:.0f} ms' if db_ms is not None else 'not checked'}",
    )
    if infra.saturated:
        conclude(
            rec,
            "memory_pressure",
            f"{pattern} slowness with memory/CPU under pressure ({infra.line()}): scale horizontally",
            options=list(SOLUTIONS),
            data=details,
        )
        sub = resource_exhaustion(
            incident_id=rec.incident.id,
            replicas=replicas,
            poll_interval_s=poll_interval_s,
            dry_run=dry_run,
        )
        return rec.finish(sub.outcome, f"memory pressure: {sub.summary}")
    if probe.health.latency_ms > network_ms or not probe.health.ok:
        conclude(
            rec,
            "network_saturation",
            f"{pattern}: even /health takes {probe.health.latency_ms:.0f} ms (> {network_ms:g} ms)",
            options=list(SOLUTIONS),
            data=details,
        )
        return rec.finish(RunbookOutcome.ESCALATED, "network path saturated; escalated (DevOps)")
    if slow_apis:
        names = ", ".join(f"{a.name} ({a.probe.line()})" for a in slow_apis)
        conclude(
            rec,
            "external_api_latency",
            f"{pattern}: external API latency: {names}",
            options=[
                "Increase cache TTL",
                "Reduce data payload size",
                "turn the feature off (flag) if it gets worse",
            ],
            data=details,
        )
        return rec.finish(RunbookOutcome.ESCALATED, f"external API latency ({names}); escalated")
    database_itself = db_ms is not None and db_ms > network_ms
    slowest = max(queries.items(), key=lambda p: p[1]) if queries else None
    if database_itself:
        reason = f"{pattern}: the database itself is slow (SELECT 1 {db_ms:.0f} ms)"
    elif slowest is not None:
        reason = (
            f"{pattern}: {where} slow; the database runs a query for {slowest[1]:.0f} ms "
            f"({_short(slowest[0])}) while SELECT 1 takes {db_ms or 0:.0f} ms: a slow query"
        )
    else:
        reason = (
            f"{pattern}: {where} slow while /health ({probe.health.latency_ms:.0f} ms), the external APIs and "
            f"memory are fine: the endpoints' database queries"
        )
    conclude(
        rec,
        "database_query",
        reason,
        options=["Optimize slow query", "Enable database connection pooling", "Increase cache TTL"],
        data={**details, "select1_ms": db_ms, "slow_queries": sorted(queries)[:5]},
    )
    return rec.finish(RunbookOutcome.ESCALATED, f"slow database query on {where}; escalated to optimize it")
