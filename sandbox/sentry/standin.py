"""`SentryStandIn`: the Sentry API stand-in: what the sandbox reports, fault controls, auth, the routes.

See `sandbox.sentry` for the endpoints and their shapes. In-process, the sandbox's service reports
exceptions (`capture_exception`, grouped into issues) and traffic (`record_requests`, for the stats);
over HTTP the runbooks read them with a Bearer token as they read sentry.io.
"""

from __future__ import annotations

import hmac
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from sandbox.httpserver import HttpError, Request, Response, StandIn
from sandbox.sentry.model import (
    LEVELS,
    Frame,
    SentryEvent,
    SentryIssue,
    Traffic,
    base36,
    issue_filter,
    parse_frame,
)
from sandbox.sentry.shapes import event_json, issue_json, project_json
from sandbox.sentry.stats import positive_int, project_stats, stats_v2

__all__ = ["SentryFault", "SentryStandIn"]

SentryFault = Literal["http_500", "timeout", "rate_limited"]

_NOT_PROVIDED = {"detail": "Authentication credentials were not provided."}
_INVALID_TOKEN = {"detail": "Invalid token"}
_TOO_FREQUENT = "You are attempting to use this endpoint too frequently. Limit is 40 requests in 1 seconds"
_NOT_FOUND = {"detail": "The requested resource does not exist"}


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
        self._traffic: dict[str, list[Traffic]] = {}
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
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        parsed = [parse_frame(f) for f in frames]
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
                    short_id=f"{service.upper()}-{base36(self._next_issue)}",
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
            self._traffic[slug].append(Traffic(self.clock(), total, errors))

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
            project_json(self, slug) | {"organization": {"slug": self.org, "name": self.org}}
        )

    def _list_issues(self, request: Request) -> Response:
        slug = self._project(request)
        query = request.arg("query")
        stats_period = request.arg("statsPeriod", "24h") or ""
        if stats_period not in ("", "24h", "14d"):
            raise HttpError(400, {"detail": "Invalid stats_period. Valid choices are '', '24h', and '14d'"})
        limit = positive_int(request.arg("limit"), "limit", default=100)
        match = issue_filter("is:unresolved" if query is None else query)
        with self._lock:
            found = [i for i in self._issues.values() if i.project == slug and match(i)]
            found.sort(key=lambda i: i.last_seen, reverse=True)
            body = [issue_json(self, i, stats_period) for i in found[:limit]]
        here = f"{self.url}{request.path}"
        link = (
            f'<{here}?cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", '
            f'<{here}?cursor=0:{limit}:0>; rel="next"; results="false"; cursor="0:{limit}:0"'
        )
        return Response.json(body, headers={"Link": link})

    def _get_issue(self, request: Request) -> Response:
        issue = self._issue(request)
        with self._lock:
            return Response.json(issue_json(self, issue, "24h"))

    def _update_issue(self, request: Request) -> Response:
        issue = self._issue(request)
        body = request.json()
        status = body.get("status") if isinstance(body, dict) else None
        if status not in ("resolved", "unresolved", "ignored"):
            raise HttpError(400, {"status": ['"status" must be one of resolved, unresolved, ignored']})
        with self._lock:
            issue.status = status
            return Response.json(issue_json(self, issue, "24h"))

    def _latest_event(self, request: Request) -> Response:
        issue = self._issue(request)
        with self._lock:
            if not issue.events:
                raise HttpError(404, _NOT_FOUND)
            return Response.json(event_json(self, issue, issue.events[-1]))

    def _project_stats(self, request: Request) -> Response:
        slug = self._project(request)
        with self._lock:
            traffic = list(self._traffic[slug])
        return Response.json(project_stats(request, traffic, self.clock))

    def _stats_v2(self, request: Request) -> Response:
        self._authenticate(request)
        if request.params["org"] != self.org:
            raise HttpError(404, _NOT_FOUND)
        with self._lock:
            traffic = {slug: list(ts) for slug, ts in self._traffic.items()}
        return Response.json(stats_v2(request, traffic, self._project_ids, self.clock))
