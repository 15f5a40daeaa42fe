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

The stand-in in parts: `standin` (`SentryStandIn`: what the sandbox reports, faults, auth, the routes),
`model` (issues, events, traffic, frames, the issue search), `stats` (the `stats/` and `stats_v2/`
endpoints), `shapes` (the JSON Sentry answers with).
"""

from sandbox.sentry.model import Frame, SentryEvent, SentryIssue
from sandbox.sentry.standin import SentryStandIn

__all__ = ["Frame", "SentryEvent", "SentryIssue", "SentryStandIn"]
