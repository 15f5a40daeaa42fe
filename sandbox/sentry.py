"""A Sentry API stand-in: a project's unresolved issues, an issue's latest event, event counts.

Usage::

    sentry = SentryStandIn(token="sntrys-sandbox", org="emotionscare", projects=("emotionscare",)).start()
    # the sandbox reports what its service does:
    sentry.capture_exception("emotionscare", "relation \"journal\" does not exist", "UndefinedTable",
                             frames=[("app/journal.py", "create_entry", 42)], tags={"release": "v2"})
    sentry.record_requests(total=200, errors=14)         # traffic, for the stats endpoints
    # the runbooks read it as they read sentry.io:
    httpx.get(f"{sentry.url}/api/0/projects/emotionscare/emotionscare/issues/",
              params={"query": "is:unresolved"}, headers={"Authorization": "Bearer sntrys-sandbox"})
    sentry.resolve_all()

HTTP (paths and shapes of `https://sentry.io/api/0/`):
- `GET /api/0/projects/{org}/{project}/`: the project (its numeric `id` is what `stats_v2` filters on).
- `GET /api/0/projects/{org}/{project}/issues/?query=is:unresolved&statsPeriod=24h`: issues, most
  recently seen first, each with id, shortId, title, culprit, permalink, level, status, count (a
  string, as Sentry sends it), userCount, firstSeen, lastSeen, metadata, project and `stats`. No
  `query` means `is:unresolved` (Sentry's default); `query=` (empty) means every issue. Understood
  terms: `is:unresolved|resolved|ignored`, `level:NAME`, and free text matched against the title.
- `GET /api/0/issues/{id}/` and `PUT` with `{"status": "resolved"|"unresolved"|"ignored"}`.
- `GET /api/0/issues/{id}/events/latest/` (also under `/organizations/{org}/issues/{id}/`): the event
  with message, tags `[{key, value}]` and an `exception` entry whose `values[].stacktrace.frames[]`
  carry filename, function, module, lineNo, inApp (innermost frame last).
- `GET /api/0/projects/{org}/{project}/stats/?stat=received&since=&until=&resolution=10s|1h|1d`:
  `[[timestamp, count], ...]`, one point per bucket. `received` counts error events; `rejected`,
  `blacklisted` and `generated` are zero here.
- `GET /api/0/organizations/{org}/stats_v2/?field=sum(quantity)&groupBy=category&category=error&
  category=transaction&project=ID&statsPeriod=5m&interval=1m`: Sentry's usage shape
  (`start`, `end`, `intervals`, `groups[{by, totals, series}]`).

The error rate, as a runbook derives it: error events over transactions in the same window, from
`stats_v2` grouped by category: `100 * errors / transactions`. (`stats/` alone gives error counts.)
Errors counted in the stats come from `record_requests(total, errors)` only: `capture_exception`
feeds issues and events, not the counts, so a caller reporting both never counts a failure twice.

Auth as Sentry's API answers it: no `Authorization: Bearer` header → 401
`{"detail": "Authentication credentials were not provided."}`; a wrong token → 401
`{"detail": "Invalid token"}` (a bare `Bearer`: "Invalid token header. No credentials provided.");
an unknown organization, project or issue → 404 `{"detail": "The requested resource does not exist"}`;
bad query parameters → 400 `{"detail": ...}`.

Why one module past 400 lines: it is one stand-in; its endpoints share the issue and event store, the
auth and the query parsing, and split apart each part would reach into the others.
"""

from __future__ import annotations

import hmac
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sandbox.httpserver import HttpError, Request, Response, StandIn

__all__ = ["Frame", "SentryEvent", "SentryIssue", "SentryStandIn"]

SentryFault = Literal["http_500", "timeout", "rate_limited"]
Frame = tuple[str, str, int] | Mapping[str, Any]
"""A stack frame: `(filename, function, lineno)` or a dict with filename, function, lineNo/lineno, module."""

_NOT_PROVIDED = {"detail": "Authentication credentials were not provided."}
_INVALID_TOKEN = {"detail": "Invalid token"}
_TOO_FREQUENT = "You are attempting to use this endpoint too frequently. Limit is 40 requests in 1 seconds"
_NOT_FOUND = {"detail": "The requested resource does not exist"}
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
_LEVELS = ("fatal", "error", "warning", "info", "debug")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass
class SentryEvent:
    """One captured occurrence."""

    event_id: str
    issue_id: str
    message: str
    exc_type: str
    frames: list[dict[str, Any]]
    level: str
    tags: dict[str, str]
    at: datetime


@dataclass
class SentryIssue:
    """A group of events sharing one fingerprint (exception type + culprit)."""

    id: str
    short_id: str
    project: str
    fingerprint: tuple[str, str]
    title: str
    culprit: str
    level: str
    exc_type: str
    value: str
    filename: str
    function: str
    first_seen: datetime
    last_seen: datetime
    status: str = "unresolved"
    events: list[SentryEvent] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.events)

    @property
    def user_count(self) -> int:
        return len({e.tags["user"] for e in self.events if e.tags.get("user")})


@dataclass
class _Traffic:
    at: datetime
    transactions: int
    errors: int


class SentryStandIn(StandIn):
    """Sentry's web API over HTTP; errors and traffic reported in-process by the sandbox."""

    name = "sentry"

    def __init__(
        self,
        token: str = "sntrys-sandbox-token",
        org: str = "emotionscare",
        projects: Iterable[str] = ("emotionscare",),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        platform: str = "python",
    ) -> None:
        super().__init__()
        self.token = token
        self.org = org
        self.clock = clock
        self.platform = platform
        self._project_slugs = tuple(projects)
        self._project_ids = {slug: str(4504000000000001 + i) for i, slug in enumerate(self._project_slugs)}
        self._lock = threading.Lock()
        self._issues: dict[str, SentryIssue] = {}
        self._by_fingerprint: dict[tuple[str, str, str], str] = {}
        self._traffic: dict[str, list[_Traffic]] = {}
        self._next_issue = 0
        self._reset_state()
        r = self.server.route
        r("GET", "/api/0/projects/{org}/{project}/", self._get_project)
        r("GET", "/api/0/projects/{org}/{project}/issues/", self._list_issues)
        r("GET", "/api/0/projects/{org}/{project}/stats/", self._project_stats)
        r("GET", "/api/0/issues/{issue_id}/", self._get_issue)
        r("PUT", "/api/0/issues/{issue_id}/", self._update_issue)
        r("GET", "/api/0/issues/{issue_id}/events/latest/", self._latest_event)
        r("GET", "/api/0/organizations/{org}/issues/{issue_id}/", self._get_issue)
        r("GET", "/api/0/organizations/{org}/issues/{issue_id}/events/latest/", self._latest_event)
        r("GET", "/api/0/organizations/{org}/stats_v2/", self._stats_v2)

    def _reset_state(self) -> None:
        with self._lock:
            self._issues.clear()
            self._by_fingerprint.clear()
            self._traffic = {slug: [] for slug in self._project_slugs}
            self._next_issue = 0

    # -- in-process API: what the sandbox's service reports ----------------------------------------
    def capture_exception(
        self,
        service: str,
        message: str,
        exc_type: str,
        frames: Sequence[Frame],
        level: str = "error",
        tags: Mapping[str, str] | None = None,
    ) -> SentryEvent:
        """Record one exception in project `service`; events with the same type and culprit (the
        innermost in-app frame) group into one issue, which reopens if it was resolved."""
        if service not in self._project_ids:
            raise ValueError(f"no Sentry project {service!r} (projects: {', '.join(self._project_slugs)})")
        if level not in _LEVELS:
            raise ValueError(f"level must be one of {', '.join(_LEVELS)}, not {level!r}")
        parsed = [_frame(f) for f in frames]
        if not parsed:
            raise ValueError("frames must hold at least one frame (filename, function, lineno)")
        top = next((f for f in reversed(parsed) if f["inApp"]), parsed[-1])
        culprit = f"{top['module'] or top['filename']} in {top['function']}"
        now = self.clock()
        event_tags = {"environment": "production", "level": level, "server_name": service, **dict(tags or {})}
        with self._lock:
            key = (service, exc_type, culprit)
            issue_id = self._by_fingerprint.get(key)
            if issue_id is None:
                self._next_issue += 1
                issue_id = str(6100000000 + self._next_issue)
                issue = SentryIssue(
                    id=issue_id,
                    short_id=f"{service.upper()}-{_base36(self._next_issue)}",
                    project=service,
                    fingerprint=(exc_type, culprit),
                    title=f"{exc_type}: {message}"[:200],
                    culprit=culprit,
                    level=level,
                    exc_type=exc_type,
                    value=message,
                    filename=str(top["filename"]),
                    function=str(top["function"]),
                    first_seen=now,
                    last_seen=now,
                )
                self._issues[issue_id] = issue
                self._by_fingerprint[key] = issue_id
            issue = self._issues[issue_id]
            event = SentryEvent(
                event_id=uuid.uuid4().hex,
                issue_id=issue_id,
                message=message,
                exc_type=exc_type,
                frames=parsed,
                level=level,
                tags=event_tags,
                at=now,
            )
            issue.events.append(event)
            issue.last_seen = now
            issue.status = "unresolved"  # a regression reopens a resolved issue
            return event

    def record_requests(self, total: int, errors: int, service: str | None = None) -> None:
        """Count `total` transactions of which `errors` produced an error event (stats endpoints)."""
        if total < 0 or errors < 0 or errors > total:
            raise ValueError(f"need 0 <= errors <= total, got total={total} errors={errors}")
        slug = service or self._project_slugs[0]
        if slug not in self._project_ids:
            raise ValueError(f"no Sentry project {slug!r}")
        with self._lock:
            self._traffic[slug].append(_Traffic(self.clock(), total, errors))

    def resolve_all(self) -> None:
        """Mark every issue resolved (after a fix is verified)."""
        with self._lock:
            for issue in self._issues.values():
                issue.status = "resolved"

    def issues(self, status: str | None = None) -> list[SentryIssue]:
        with self._lock:
            return [i for i in self._issues.values() if status is None or i.status == status]

    def project_id(self, slug: str) -> str:
        return self._project_ids[slug]

    # -- fault controls -----------------------------------------------------------------------------
    def fail_next(
        self, count: int = 1, kind: SentryFault = "http_500", *, delay_s: float = 30.0, retry_after_s: int = 1
    ) -> None:
        """The next `count` API calls fail: HTTP 500, a `delay_s` wait (client timeout), or HTTP 429."""
        if kind == "http_500":
            self.server.inject(
                count, Response.json({"detail": "Internal Error", "errorId": uuid.uuid4().hex}, status=500)
            )
        elif kind == "timeout":
            self.server.inject(count, delay_s=delay_s)
        elif kind == "rate_limited":
            self.server.inject(
                count,
                Response.json(
                    {"detail": _TOO_FREQUENT},
                    status=429,
                    headers={"Retry-After": str(retry_after_s)},
                ),
            )
        else:
            raise ValueError(f"unknown Sentry fault {kind!r} (http_500, timeout, rate_limited)")

    # -- HTTP ---------------------------------------------------------------------------------------
    def _authenticate(self, request: Request) -> None:
        challenge = {"WWW-Authenticate": 'Bearer realm="api"'}
        parts = request.headers.get("authorization", "").split()
        if not parts or parts[0].lower() != "bearer":
            raise HttpError(401, _NOT_PROVIDED, challenge)
        if len(parts) == 1:
            raise HttpError(401, {"detail": "Invalid token header. No credentials provided."}, challenge)
        if len(parts) > 2:
            raise HttpError(
                401, {"detail": "Invalid token header. Token string should not contain spaces."}, challenge
            )
        if not hmac.compare_digest(parts[1].encode(), self.token.encode()):
            raise HttpError(401, _INVALID_TOKEN, challenge)

    def _project(self, request: Request) -> str:
        self._authenticate(request)
        if request.params.get("org") != self.org or request.params.get("project") not in self._project_ids:
            raise HttpError(404, _NOT_FOUND)
        return request.params["project"]

    def _issue(self, request: Request) -> SentryIssue:
        self._authenticate(request)
        if "org" in request.params and request.params["org"] != self.org:
            raise HttpError(404, _NOT_FOUND)
        issue = self._issues.get(request.params["issue_id"])
        if issue is None:
            raise HttpError(404, _NOT_FOUND)
        return issue

    def _get_project(self, request: Request) -> Response:
        slug = self._project(request)
        return Response.json(
            self._project_json(slug) | {"organization": {"slug": self.org, "name": self.org}}
        )

    def _list_issues(self, request: Request) -> Response:
        slug = self._project(request)
        query = request.arg("query")
        stats_period = request.arg("statsPeriod", "24h") or ""
        if stats_period not in ("", "24h", "14d"):
            raise HttpError(400, {"detail": "Invalid stats_period. Valid choices are '', '24h', and '14d'"})
        limit = _positive_int(request.arg("limit"), "limit", default=100)
        match = _issue_filter("is:unresolved" if query is None else query)
        with self._lock:
            found = [i for i in self._issues.values() if i.project == slug and match(i)]
            found.sort(key=lambda i: i.last_seen, reverse=True)
            body = [self._issue_json(i, stats_period) for i in found[:limit]]
        here = f"{self.url}{request.path}"
        link = (
            f'<{here}?cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", '
            f'<{here}?cursor=0:{limit}:0>; rel="next"; results="false"; cursor="0:{limit}:0"'
        )
        return Response.json(body, headers={"Link": link})

    def _get_issue(self, request: Request) -> Response:
        issue = self._issue(request)
        with self._lock:
            return Response.json(self._issue_json(issue, "24h"))

    def _update_issue(self, request: Request) -> Response:
        issue = self._issue(request)
        body = request.json()
        status = body.get("status") if isinstance(body, dict) else None
        if status not in ("resolved", "unresolved", "ignored"):
            raise HttpError(400, {"status": ['"status" must be one of resolved, unresolved, ignored']})
        with self._lock:
            issue.status = status
            return Response.json(self._issue_json(issue, "24h"))

    def _latest_event(self, request: Request) -> Response:
        issue = self._issue(request)
        with self._lock:
            if not issue.events:
                raise HttpError(404, _NOT_FOUND)
            return Response.json(self._event_json(issue, issue.events[-1]))

    def _project_stats(self, request: Request) -> Response:
        slug = self._project(request)
        stat = request.arg("stat", "received") or "received"
        if stat not in _STATS:
            raise HttpError(400, {"detail": f"Invalid stat: {stat}"})
        resolution = request.arg("resolution", "1h") or "1h"
        if resolution not in _RESOLUTIONS:
            raise HttpError(400, {"detail": f"Invalid resolution: {resolution} (one of 10s, 1h, 1d)"})
        step = _RESOLUTIONS[resolution]
        now = self.clock()
        until = _epoch_arg(request.arg("until"), "until", default=now.timestamp())
        since = _epoch_arg(request.arg("since"), "since", default=until - 86400)
        if since > until:
            raise HttpError(400, {"detail": "since must be before until"})
        first = int(since // step) * step
        buckets = {t: 0 for t in range(first, int(until) + 1, step)}
        if stat == "received":
            with self._lock:
                for t in self._traffic[slug]:
                    ts = t.at.timestamp()
                    if since <= ts <= until:
                        buckets[int(ts // step) * step] += t.errors
        return Response.json([[t, n] for t, n in sorted(buckets.items())])

    def _stats_v2(self, request: Request) -> Response:
        self._authenticate(request)
        if request.params["org"] != self.org:
            raise HttpError(404, _NOT_FOUND)
        field_name = request.arg("field")
        if field_name not in ("sum(quantity)", "sum(times_seen)"):
            raise HttpError(
                400, {"detail": 'Invalid field: "field" must be sum(quantity) or sum(times_seen)'}
            )
        group_by = request.query.get("groupBy", [])
        if not group_by or any(g not in ("outcome", "category", "reason", "project") for g in group_by):
            raise HttpError(
                400, {"detail": "groupBy must be one or more of outcome, category, reason, project"}
            )
        categories = request.query.get("category", []) or ["error", "transaction"]
        unknown = [c for c in categories if c not in _CATEGORIES]
        if unknown:
            raise HttpError(400, {"detail": f"Invalid category: {unknown[0]}"})
        outcomes = request.query.get("outcome", [])
        wanted_ids = [p for p in request.query.get("project", []) if p != "-1"]
        by_id = {pid: slug for slug, pid in self._project_ids.items()}
        if any(p not in by_id for p in wanted_ids):
            raise HttpError(403, {"detail": "You do not have permission to perform this action."})
        slugs = [by_id[p] for p in wanted_ids] or list(self._project_slugs)
        interval_s = _duration_s(request.arg("interval", "1h") or "1h", "interval")
        now = self.clock()
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
        with self._lock:
            for slug in slugs:
                for category in categories:
                    for outcome in ["accepted"]:
                        if outcomes and outcome not in outcomes:
                            continue
                        labels = {
                            "category": category,
                            "outcome": outcome,
                            "reason": "none",
                            "project": self._project_ids[slug],
                        }
                        key = tuple((g, labels[g]) for g in group_by)
                        series = groups.setdefault(key, [0] * len(edges))
                        for t in self._traffic[slug]:
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
            "start": _iso(datetime.fromtimestamp(first, UTC), "seconds"),
            "end": _iso(end, "seconds"),
            "intervals": [_iso(datetime.fromtimestamp(e, UTC), "seconds") for e in edges],
            "groups": [
                {
                    "by": {g: (int(v) if g == "project" else v) for g, v in key},
                    "totals": {field_name: sum(series)},
                    "series": {field_name: series},
                }
                for key, series in groups.items()
            ],
        }
        return Response.json(body)

    # -- JSON shapes (callers hold self._lock) ------------------------------------------------------
    def _project_json(self, slug: str) -> dict[str, Any]:
        return {"id": self._project_ids[slug], "slug": slug, "name": slug, "platform": self.platform}

    def _issue_json(self, issue: SentryIssue, stats_period: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": issue.id,
            "shortId": issue.short_id,
            "title": issue.title,
            "culprit": issue.culprit,
            "permalink": f"{self.url}/organizations/{self.org}/issues/{issue.id}/",
            "logger": None,
            "level": issue.level,
            "status": issue.status,
            "statusDetails": {},
            "substatus": "ongoing" if issue.status == "unresolved" else None,
            "isPublic": False,
            "platform": self.platform,
            "project": self._project_json(issue.project),
            "type": "error",
            "metadata": {
                "type": issue.exc_type,
                "value": issue.value,
                "filename": issue.filename,
                "function": issue.function,
            },
            "numComments": 0,
            "assignedTo": None,
            "isBookmarked": False,
            "isSubscribed": False,
            "hasSeen": False,
            "annotations": [],
            "count": str(issue.count),
            "userCount": issue.user_count,
            "firstSeen": _iso(issue.first_seen),
            "lastSeen": _iso(issue.last_seen),
        }
        if stats_period:
            step = 3600 if stats_period == "24h" else 86400
            n = 24 if stats_period == "24h" else 14
            now = int(self.clock().timestamp() // step) * step
            edges = [now - step * (n - 1 - i) for i in range(n)]
            counts = dict.fromkeys(edges, 0)
            for event in issue.events:
                bucket = int(event.at.timestamp() // step) * step
                if bucket in counts:
                    counts[bucket] += 1
            body["stats"] = {stats_period: [[t, counts[t]] for t in edges]}
        return body

    def _event_json(self, issue: SentryIssue, event: SentryEvent) -> dict[str, Any]:
        return {
            "id": event.event_id,
            "eventID": event.event_id,
            "groupID": issue.id,
            "projectID": self._project_ids[issue.project],
            "title": f"{event.exc_type}: {event.message}",
            "message": event.message,
            "type": "error",
            "platform": self.platform,
            "culprit": issue.culprit,
            "location": issue.filename,
            "dateCreated": _iso(event.at),
            "dateReceived": _iso(event.at),
            "tags": [{"key": k, "value": v} for k, v in sorted(event.tags.items())],
            "metadata": {
                "type": event.exc_type,
                "value": event.message,
                "filename": issue.filename,
                "function": issue.function,
            },
            "entries": [
                {
                    "type": "exception",
                    "data": {
                        "values": [
                            {
                                "type": event.exc_type,
                                "value": event.message,
                                "module": None,
                                "mechanism": {"type": "generic", "handled": False},
                                "stacktrace": {
                                    "frames": event.frames,
                                    "framesOmitted": None,
                                    "registers": None,
                                    "hasSystemFrames": any(not f["inApp"] for f in event.frames),
                                },
                                "rawStacktrace": None,
                            }
                        ],
                        "hasSystemFrames": any(not f["inApp"] for f in event.frames),
                        "excOmitted": None,
                    },
                }
            ],
            "contexts": {},
            "context": {},
            "user": {"id": event.tags["user"]} if event.tags.get("user") else None,
            "sdk": {"name": "sentry.python", "version": "2.19.0"},
            "release": {"version": event.tags["release"]} if event.tags.get("release") else None,
            "environment": event.tags.get("environment"),
        }


# -- helpers ----------------------------------------------------------------------------------------
def _frame(frame: Frame) -> dict[str, Any]:
    if isinstance(frame, Mapping):
        filename = frame.get("filename")
        function = frame.get("function")
        line = frame.get("lineNo", frame.get("lineno"))
        module = frame.get("module")
        in_app = bool(frame.get("inApp", frame.get("in_app", True)))
    else:
        filename, function, line = frame
        module, in_app = None, True
    if not filename or not function:
        raise ValueError(f"a frame needs a filename and a function: {frame!r}")
    return {
        "filename": str(filename),
        "absPath": str(filename),
        "module": module,
        "function": str(function),
        "lineNo": int(line) if line is not None else None,
        "colNo": None,
        "inApp": in_app,
        "context": [],
        "vars": None,
    }


def _issue_filter(query: str) -> Callable[[SentryIssue], bool]:
    statuses: set[str] = set()
    levels: set[str] = set()
    words: list[str] = []
    for token in query.split():
        key, sep, value = token.partition(":")
        if sep and key == "is":
            if value not in ("unresolved", "resolved", "ignored"):
                raise HttpError(400, {"detail": f'Invalid value for "is" search, got: {value}'})
            statuses.add(value)
        elif sep and key == "level":
            levels.add(value)
        else:
            words.append(token.lower())

    def match(issue: SentryIssue) -> bool:
        return (
            (not statuses or issue.status in statuses)
            and (not levels or issue.level in levels)
            and all(w in issue.title.lower() for w in words)
        )

    return match


def _iso(at: datetime, timespec: str = "microseconds") -> str:
    return at.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _positive_int(raw: str | None, name: str, default: int) -> int:
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
