"""The Sentry stand-in's stats endpoints: `projects/{org}/{project}/stats/` and `organizations/{org}/stats_v2/`.

Counts come from the recorded `Traffic` (error events and transactions); the query parameters are
checked as Sentry checks them, a bad one a 400 with Sentry's `{"detail": ...}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.httpserver import HttpError, Request
from sandbox.sentry.model import Traffic, iso

__all__ = ["positive_int", "project_stats", "stats_v2"]

_RESOLUTIONS = {"10s": 10, "1h": 3600, "1d": 86400}
_STATS = ("received", "rejected", "blacklisted", "generated")
_CATEGORIES = (
    "error",
    "transaction",
    "default",
    "security",
    "attachment",
    "session",
    "profile",
    "replay",
    "span",
)
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def project_stats(
    request: Request, traffic: Sequence[Traffic], clock: Callable[[], datetime]
) -> list[list[int]]:
    """`GET stats/`: `[[timestamp, count], ...]`, one point per bucket of `resolution`."""
    stat = request.arg("stat", "received") or "received"
    if stat not in _STATS:
        raise HttpError(400, {"detail": f"Invalid stat: {stat}"})
    resolution = request.arg("resolution", "1h") or "1h"
    if resolution not in _RESOLUTIONS:
        raise HttpError(400, {"detail": f"Invalid resolution: {resolution} (one of 10s, 1h, 1d)"})
    step = _RESOLUTIONS[resolution]
    now = clock()
    until = _epoch_arg(request.arg("until"), "until", default=now.timestamp())
    since = _epoch_arg(request.arg("since"), "since", default=until - 86400)
    if since > until:
        raise HttpError(400, {"detail": "since must be before until"})
    first = int(since // step) * step
    buckets = {t: 0 for t in range(first, int(until) + 1, step)}
    if stat == "received":
        for t in traffic:
            ts = t.at.timestamp()
            if since <= ts <= until:
                buckets[int(ts // step) * step] += t.errors
    return [[t, n] for t, n in sorted(buckets.items())]


def stats_v2(
    request: Request,
    traffic: Mapping[str, Sequence[Traffic]],
    project_ids: Mapping[str, str],
    clock: Callable[[], datetime],
) -> dict[str, Any]:
    """`GET stats_v2/`: Sentry's usage shape (`start`, `end`, `intervals`, `groups[{by, totals, series}]`)."""
    field_name = request.arg("field")
    if field_name not in ("sum(quantity)", "sum(times_seen)"):
        raise HttpError(400, {"detail": 'Invalid field: "field" must be sum(quantity) or sum(times_seen)'})
    group_by = request.query.get("groupBy", [])
    if not group_by or any(g not in ("outcome", "category", "reason", "project") for g in group_by):
        raise HttpError(400, {"detail": "groupBy must be one or more of outcome, category, reason, project"})
    categories = request.query.get("category", []) or ["error", "transaction"]
    unknown = [c for c in categories if c not in _CATEGORIES]
    if unknown:
        raise HttpError(400, {"detail": f"Invalid category: {unknown[0]}"})
    outcomes = request.query.get("outcome", [])
    wanted_ids = [p for p in request.query.get("project", []) if p != "-1"]
    by_id = {pid: slug for slug, pid in project_ids.items()}
    if any(p not in by_id for p in wanted_ids):
        raise HttpError(403, {"detail": "You do not have permission to perform this action."})
    slugs = [by_id[p] for p in wanted_ids] or list(project_ids)
    interval_s = _duration_s(request.arg("interval", "1h") or "1h", "interval")
    now = clock()
    if request.arg("start") or request.arg("end"):
        start = _iso_arg(request.arg("start"), "start")
        end = _iso_arg(request.arg("end"), "end")
    else:
        end = now
        start = end - timedelta(
            seconds=_duration_s(request.arg("statsPeriod", "24h") or "24h", "statsPeriod")
        )
    first = int(start.timestamp() // interval_s) * interval_s
    edges = list(range(first, int(end.timestamp()) + 1, interval_s))
    if len(edges) > 10000:
        raise HttpError(400, {"detail": "Your interval and date range would create too many results."})
    groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for slug in slugs:
        for category in categories:
            for outcome in ["accepted"]:
                if outcomes and outcome not in outcomes:
                    continue
                labels = {
                    "category": category,
                    "outcome": outcome,
                    "reason": "none",
                    "project": project_ids[slug],
                }
                key = tuple((g, labels[g]) for g in group_by)
                series = groups.setdefault(key, [0] * len(edges))
                for t in traffic[slug]:
                    ts = t.at.timestamp()
                    if not (start.timestamp() <= ts <= end.timestamp()):
                        continue
                    n = (
                        t.errors
                        if category == "error"
                        else t.transactions
                        if category == "transaction"
                        else 0
                    )
                    series[(int(ts) - first) // interval_s] += n
    body = {
        "start": iso(datetime.fromtimestamp(first, UTC), "seconds"),
        "end": iso(end, "seconds"),
        "intervals": [iso(datetime.fromtimestamp(e, UTC), "seconds") for e in edges],
        "groups": [
            {
                "by": {g: (int(v) if g == "project" else v) for g, v in key},
                "totals": {field_name: sum(series)},
                "series": {field_name: series},
            }
            for key, series in groups.items()
        ],
    }
    return body


def positive_int(raw: str | None, name: str, default: int) -> int:
    """A query parameter that must be an integer >= 1 (`default` when absent); else a 400."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise HttpError(400, {"detail": f"{name} must be an integer"}) from exc
    if value < 1:
        raise HttpError(400, {"detail": f"{name} must be at least 1"})
    return value


def _epoch_arg(raw: str | None, name: str, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise HttpError(400, {"detail": f"{name} must be a timestamp in seconds since the epoch"}) from exc


def _iso_arg(raw: str | None, name: str) -> datetime:
    if not raw:
        raise HttpError(400, {"detail": "start and end are required together"})
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise HttpError(400, {"detail": f"{name} must be an ISO 8601 datetime"}) from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _duration_s(raw: str, name: str) -> int:
    match = _DURATION.match(raw)
    if match is None or int(match.group(1)) < 1:
        raise HttpError(400, {"detail": f"Invalid {name}: {raw!r} (a number and a unit: s, m, h, d, w)"})
    return int(match.group(1)) * _UNIT_S[match.group(2)]
