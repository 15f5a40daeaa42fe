"""Prometheus metrics of one intake app, in its own registry (never the process-global one).

Usage::

    metrics = IntakeMetrics()
    metrics.received.labels(source="alertmanager", status="firing").inc()
    metrics.render()          # (bytes, content type) for GET /metrics

Names (docs/intake.md, "Metrics"): `intake_requests_total{source,code}`,
`intake_alerts_received_total{source,status}`, `intake_alerts_deduplicated_total{source}`,
`intake_incidents_created_total{source}`, `intake_dispatch_total{outcome}` (dispatched, failed),
`intake_dispatch_queue_depth`, `intake_request_duration_seconds{source}`,
`intake_dispatch_duration_seconds`, `intake_group_commit_requests` and
`intake_group_commit_duration_seconds` (one observation per group commit: its requests, its time).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["IntakeMetrics"]

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
"""Requests per group commit: at most 64 (`GroupCommitter.max_batch`)."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IntakeMetrics:
    """The intake's counters, gauge and histograms, registered in `self.registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "intake_requests",
            "HTTP requests to /alerts, by source and answer code",
            ["source", "code"],
            registry=r,
        )
        self.received = Counter(
            "intake_alerts_received",
            "Alerts accepted and stored, by source and status",
            ["source", "status"],
            registry=r,
        )
        self.deduplicated = Counter(
            "intake_alerts_deduplicated", "Firing alerts that joined an open incident", ["source"], registry=r
        )
        self.incidents_created = Counter(
            "intake_incidents_created", "Incidents opened by an alert", ["source"], registry=r
        )
        self.dispatch = Counter(
            "intake_dispatch",
            "respond flow run creations, by outcome (dispatched, failed)",
            ["outcome"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "intake_dispatch_queue_depth", "Incidents waiting for their respond flow run", registry=r
        )
        self.request_seconds = Histogram(
            "intake_request_duration_seconds",
            "Time to answer POST /alerts, by source",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dispatch_seconds = Histogram(
            "intake_dispatch_duration_seconds",
            "Time to create one respond flow run",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        self.batch_requests = Histogram(
            "intake_group_commit_requests",
            "Requests stored by one group commit (one transaction)",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "intake_group_commit_duration_seconds",
            "Time of one group commit in its writer thread: decoding, storing, committing",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def observe_batch(self, requests: int, seconds: float) -> None:
        """One group commit of `requests` requests that took `seconds` (`GroupCommitter(on_batch=...)`)."""
        self.batch_requests.observe(requests)
        self.batch_seconds.observe(seconds)

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        """Read the queue depth from `depth()` at every scrape (it asks the outbox)."""
        self.queue_depth.set_function(depth)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
