"""Request statistics: the last window's count, errors and percentiles, totals since start, and
`GET /metrics` (JSON, or Prometheus text for a scraper).

Usage::

    stats = RequestStats(window_s=60)
    stats.record("/api/journal", "GET", 200, latency_ms=12.5)
    stats.window()["p95_ms"]
    metrics_response(stats, request)      # the /metrics endpoint
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.httpserver import HttpError, Request, Response

__all__ = ["MAX_WINDOW_S", "RequestStats", "metrics_response", "prometheus_text"]

MAX_WINDOW_S = 3600.0


@dataclass
class _Sample:
    at: float
    endpoint: str
    method: str
    status: int
    latency_ms: float


class RequestStats:
    """Requests of the last `window_s` seconds (count, errors, p50/p95/p99) and totals since start."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._samples: deque[_Sample] = deque(maxlen=200_000)
        self._totals: dict[tuple[str, str, int], int] = {}
        self._sum_s: dict[tuple[str, str], float] = {}

    def record(self, endpoint: str, method: str, status: int, latency_ms: float) -> None:
        with self._lock:
            self._samples.append(_Sample(self.clock(), endpoint, method, status, latency_ms))
            key = (endpoint, method, status)
            self._totals[key] = self._totals.get(key, 0) + 1
            self._sum_s[(endpoint, method)] = self._sum_s.get((endpoint, method), 0.0) + latency_ms / 1000

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()
            self._totals.clear()
            self._sum_s.clear()

    def window(self, window_s: float | None = None) -> dict[str, Any]:
        """`{"window_s", "requests", "errors", "error_rate_pct", "p50_ms", "p95_ms", "p99_ms",
        "routes": {"GET /api/journal": {...same...}}}` over the last `window_s` seconds (default: the
        configured window; samples are kept for `MAX_WINDOW_S`)."""
        span = self.window_s if window_s is None else window_s
        with self._lock:
            now = self.clock()
            while self._samples and self._samples[0].at < now - MAX_WINDOW_S:
                self._samples.popleft()
            samples = [s for s in self._samples if s.at >= now - span]
        by_endpoint: dict[str, list[_Sample]] = {}
        for s in samples:
            by_endpoint.setdefault(f"{s.method} {s.endpoint}", []).append(s)
        return {
            "window_s": span,
            **_summary(samples),
            "routes": {name: _summary(group) for name, group in sorted(by_endpoint.items())},
        }

    def totals(self) -> tuple[dict[tuple[str, str, int], int], dict[tuple[str, str], float]]:
        with self._lock:
            return dict(self._totals), dict(self._sum_s)


def _percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile (what most dashboards show for p95)."""
    if not sorted_ms:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_ms)))
    return round(sorted_ms[rank - 1], 1)


def _summary(samples: list[_Sample]) -> dict[str, Any]:
    latencies = sorted(s.latency_ms for s in samples)
    errors = sum(1 for s in samples if s.status >= 500)
    return {
        "requests": len(samples),
        "errors": errors,
        "error_rate_pct": round(100.0 * errors / len(samples), 2) if samples else 0.0,
        "p50_ms": _percentile(latencies, 0.50),
        "p95_ms": _percentile(latencies, 0.95),
        "p99_ms": _percentile(latencies, 0.99),
    }


def metrics_response(stats: RequestStats, request: Request) -> Response:
    """JSON (`?window_s=N`, default the configured window); Prometheus text for a scraper
    (`Accept: text/plain` or OpenMetrics) or `?format=prometheus`."""
    raw = request.arg("window_s")
    try:
        window_s = float(raw) if raw is not None else None
    except ValueError as exc:
        raise HttpError(400, {"error": "invalid_field", "field": "window_s", "detail": "seconds"}) from exc
    if window_s is not None and not 0 < window_s <= MAX_WINDOW_S:
        raise HttpError(
            400,
            {
                "error": "invalid_field",
                "field": "window_s",
                "detail": f"0 < window_s <= {MAX_WINDOW_S:g}",
            },
        )
    window = stats.window(window_s)
    accept = request.headers.get("accept", "")
    fmt = request.arg("format")
    if fmt == "prometheus" or (fmt is None and ("text/plain" in accept or "openmetrics" in accept)):
        return Response.text(prometheus_text(stats, window))
    return Response.json(window)


def prometheus_text(stats: RequestStats, window: dict[str, Any]) -> str:
    """The Prometheus exposition of `stats` (totals since start) and `window` (its last window)."""
    totals, sums = stats.totals()
    lines = [
        "# HELP emotionscare_http_requests_total Requests served, by endpoint, method and status.",
        "# TYPE emotionscare_http_requests_total counter",
    ]
    for (endpoint, method, status), count in sorted(totals.items()):
        lines.append(
            f'emotionscare_http_requests_total{{endpoint="{endpoint}",method="{method}",status="{status}"}} {count}'
        )
    lines += [
        "# HELP emotionscare_http_request_duration_seconds Latency over the last window, by endpoint.",
        "# TYPE emotionscare_http_request_duration_seconds summary",
    ]
    for name, summary in window["routes"].items():
        method, endpoint = name.split(" ", 1)
        labels = f'endpoint="{endpoint}",method="{method}"'
        for q, key in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
            lines.append(
                f'emotionscare_http_request_duration_seconds{{{labels},quantile="{q}"}} {summary[key] / 1000:.4f}'
            )
        lines.append(f"emotionscare_http_request_duration_seconds_count{{{labels}}} {summary['requests']}")
        lines.append(
            f"emotionscare_http_request_duration_seconds_sum{{{labels}}} {sums.get((endpoint, method), 0.0):.4f}"
        )
    w = int(window["window_s"])
    lines += [
        "# HELP emotionscare_http_error_rate_percent Share of requests answered 5xx over the window.",
        "# TYPE emotionscare_http_error_rate_percent gauge",
        f'emotionscare_http_error_rate_percent{{window="{w}s"}} {window["error_rate_pct"]}',
        "# HELP emotionscare_http_p95_latency_seconds 95th percentile latency over the window.",
        "# TYPE emotionscare_http_p95_latency_seconds gauge",
        f'emotionscare_http_p95_latency_seconds{{window="{w}s"}} {window["p95_ms"] / 1000:.4f}',
    ]
    return "\n".join(lines) + "\n"
