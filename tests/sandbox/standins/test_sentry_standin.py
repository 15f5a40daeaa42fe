"""The Sentry API stand-in: auth as Sentry answers it, issues, latest event, stats and an error rate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sandbox.sentry import SentryStandIn

TOKEN = "sntrys-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ISSUES = "/api/0/projects/emotionscare/emotionscare/issues/"
STATS = "/api/0/projects/emotionscare/emotionscare/stats/"
FRAMES = [
    {"filename": "app/main.py", "function": "dispatch", "lineNo": 10, "inApp": True},
    {"filename": "site-packages/psycopg/cursor.py", "function": "execute", "lineNo": 97, "inApp": False},
    {"filename": "app/journal.py", "function": "create_entry", "lineNo": 42, "module": "app.journal"},
]


class Clock:
    """A settable clock so stats buckets are deterministic."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 11, 14, 10, 0, 5, tzinfo=UTC))


@pytest.fixture
def sentry_at(clock: Clock) -> Iterator[SentryStandIn]:
    """A stand-in on the settable clock."""
    stand_in = SentryStandIn(token=TOKEN, org="emotionscare", projects=("emotionscare",), clock=clock).start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


def capture(sentry: SentryStandIn, message: str = 'relation "journal" does not exist', **kw) -> None:
    kw.setdefault("exc_type", "UndefinedTable")
    kw.setdefault("frames", FRAMES)
    sentry.capture_exception("emotionscare", message, **kw)


# -- auth -------------------------------------------------------------------------------------------
ENDPOINTS = [
    ISSUES,
    STATS,
    "/api/0/projects/emotionscare/emotionscare/",
    "/api/0/issues/1/events/latest/",
    "/api/0/organizations/emotionscare/stats_v2/?field=sum(quantity)&groupBy=category",
]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Authentication credentials were not provided."),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Authentication credentials were not provided."),
        ({"Authorization": "Bearer wrong-token"}, "Invalid token"),
        ({"Authorization": "Bearer"}, "Invalid token header. No credentials provided."),
        (
            {"Authorization": f"Bearer {TOKEN} extra"},
            "Invalid token header. Token string should not contain spaces.",
        ),
    ],
)
def test_missing_or_wrong_token_is_401_as_sentry_answers(
    http: httpx.Client, sentry: SentryStandIn, path: str, headers: dict, detail: str
) -> None:
    response = http.get(sentry.url + path, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": detail}


@pytest.mark.parametrize(
    "path",
    [
        "/api/0/projects/emotionscare/nope/issues/",
        "/api/0/projects/other-org/emotionscare/issues/",
        "/api/0/projects/emotionscare/nope/stats/",
        "/api/0/issues/999/events/latest/",
        "/api/0/issues/999/",
    ],
)
def test_unknown_project_or_issue_is_404(http: httpx.Client, sentry: SentryStandIn, path: str) -> None:
    response = http.get(sentry.url + path, headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"detail": "The requested resource does not exist"}


# -- issues -----------------------------------------------------------------------------------------
def test_project_issues_list_unresolved_issues_in_sentrys_shape(
    http: httpx.Client, sentry_at: SentryStandIn
) -> None:
    capture(sentry_at, tags={"user": "u1"})
    capture(sentry_at, tags={"user": "u2"})
    capture(sentry_at, tags={"user": "u1"})
    response = http.get(sentry_at.url + ISSUES, params={"query": "is:unresolved"}, headers=AUTH)
    assert response.status_code == 200
    assert 'rel="next"' in response.headers["link"]
    [issue] = response.json()
    assert issue["title"] == 'UndefinedTable: relation "journal" does not exist'
    assert issue["culprit"] == "app.journal in create_entry"  # the innermost in-app frame
    assert issue["count"] == "3" and issue["userCount"] == 2  # Sentry sends count as a string
    assert (issue["level"], issue["status"]) == ("error", "unresolved")
    assert issue["firstSeen"] == "2025-11-14T10:00:05.000000Z" and issue["lastSeen"] == issue["firstSeen"]
    assert issue["permalink"].endswith(f"/organizations/emotionscare/issues/{issue['id']}/")
    assert issue["shortId"].startswith("EMOTIONSCARE-")
    assert issue["project"]["slug"] == "emotionscare"
    assert issue["metadata"] == {
        "type": "UndefinedTable",
        "value": 'relation "journal" does not exist',
        "filename": "app/journal.py",
        "function": "create_entry",
    }
    assert sum(count for _, count in issue["stats"]["24h"]) == 3


def test_events_group_by_type_and_culprit(http: httpx.Client, sentry: SentryStandIn) -> None:
    capture(sentry)
    capture(sentry, message="another message, same place")  # same fingerprint: same issue
    capture(sentry, exc_type="PoolTimeout")  # another type: another issue
    capture(sentry, frames=[("app/music.py", "generate", 7)])  # another culprit: another issue
    issues = http.get(sentry.url + ISSUES, headers=AUTH).json()
    assert sorted(int(i["count"]) for i in issues) == [1, 1, 2]


def test_no_query_means_unresolved_and_an_empty_query_means_all(
    http: httpx.Client, sentry_at: SentryStandIn, clock: Clock
) -> None:
    capture(sentry_at)
    sentry_at.resolve_all()
    clock.at += timedelta(minutes=1)
    capture(sentry_at, exc_type="PoolTimeout")
    assert [i["metadata"]["type"] for i in http.get(sentry_at.url + ISSUES, headers=AUTH).json()] == [
        "PoolTimeout"
    ]
    everything = http.get(sentry_at.url + ISSUES, params={"query": ""}, headers=AUTH).json()
    assert [i["metadata"]["type"] for i in everything] == ["PoolTimeout", "UndefinedTable"]  # last seen first
    resolved = http.get(sentry_at.url + ISSUES, params={"query": "is:resolved"}, headers=AUTH).json()
    assert [i["status"] for i in resolved] == ["resolved"]
    text = http.get(
        sentry_at.url + ISSUES, params={"query": "is:unresolved pooltimeout"}, headers=AUTH
    ).json()
    assert len(text) == 1
    level = http.get(sentry_at.url + ISSUES, params={"query": "level:warning"}, headers=AUTH).json()
    assert level == []


def test_a_resolved_issue_reopens_on_a_new_event(http: httpx.Client, sentry: SentryStandIn) -> None:
    capture(sentry)
    sentry.resolve_all()
    assert http.get(sentry.url + ISSUES, headers=AUTH).json() == []
    capture(sentry)
    [issue] = http.get(sentry.url + ISSUES, headers=AUTH).json()
    assert issue["count"] == "2" and issue["status"] == "unresolved"


def test_bad_issue_queries_are_400(http: httpx.Client, sentry: SentryStandIn) -> None:
    for params in ({"query": "is:sleeping"}, {"statsPeriod": "7d"}, {"limit": "zero"}):
        response = http.get(sentry.url + ISSUES, params=params, headers=AUTH)
        assert response.status_code == 400 and "detail" in response.json(), params


def test_issue_status_can_be_set_over_http(http: httpx.Client, sentry: SentryStandIn) -> None:
    capture(sentry)
    issue_id = sentry.issues()[0].id
    response = http.put(f"{sentry.url}/api/0/issues/{issue_id}/", json={"status": "resolved"}, headers=AUTH)
    assert response.status_code == 200 and response.json()["status"] == "resolved"
    assert (
        http.put(f"{sentry.url}/api/0/issues/{issue_id}/", json={"status": "gone"}, headers=AUTH).status_code
        == 400
    )


# -- latest event -----------------------------------------------------------------------------------
def test_latest_event_carries_the_message_tags_and_stack_trace(
    http: httpx.Client, sentry: SentryStandIn
) -> None:
    capture(sentry, message="first")
    capture(sentry, message="second", tags={"release": "emotionscare@2.4.1", "user": "u9"})
    issue_id = sentry.issues()[0].id
    for path in (
        f"/api/0/issues/{issue_id}/events/latest/",
        f"/api/0/organizations/emotionscare/issues/{issue_id}/events/latest/",
    ):
        event = http.get(sentry.url + path, headers=AUTH).json()
        assert event["groupID"] == issue_id
        assert event["message"] == "second"
        tags = {t["key"]: t["value"] for t in event["tags"]}
        assert tags["release"] == "emotionscare@2.4.1" and tags["environment"] == "production"
        [entry] = [e for e in event["entries"] if e["type"] == "exception"]
        [value] = entry["data"]["values"]
        assert value["type"] == "UndefinedTable" and value["value"] == "second"
        frames = value["stacktrace"]["frames"]
        assert [(f["filename"], f["function"], f["lineNo"]) for f in frames] == [
            ("app/main.py", "dispatch", 10),
            ("site-packages/psycopg/cursor.py", "execute", 97),
            ("app/journal.py", "create_entry", 42),
        ]
        assert [f["inApp"] for f in frames] == [True, False, True]


# -- stats and the error rate -----------------------------------------------------------------------
def test_project_stats_are_timestamp_count_pairs(
    http: httpx.Client, sentry_at: SentryStandIn, clock: Clock
) -> None:
    start = clock.at
    sentry_at.record_requests(total=100, errors=3)
    clock.at = start + timedelta(seconds=10)
    sentry_at.record_requests(total=100, errors=9)
    until = int(clock.at.timestamp())
    points = http.get(
        sentry_at.url + STATS,
        params={"stat": "received", "resolution": "10s", "since": until - 30, "until": until},
        headers=AUTH,
    ).json()
    assert all(len(p) == 2 and p[0] % 10 == 0 for p in points)
    assert [count for _, count in points][-2:] == [3, 9]
    assert sum(count for _, count in points) == 12
    rejected = http.get(
        sentry_at.url + STATS, params={"stat": "rejected", "resolution": "1h"}, headers=AUTH
    ).json()
    assert sum(count for _, count in rejected) == 0


def test_project_stats_default_to_a_day_by_the_hour(http: httpx.Client, sentry: SentryStandIn) -> None:
    sentry.record_requests(total=10, errors=1)
    points = http.get(sentry.url + STATS, headers=AUTH).json()
    assert len(points) in (24, 25) and points[1][0] - points[0][0] == 3600
    assert sum(count for _, count in points) == 1


@pytest.mark.parametrize("params", [{"stat": "bogus"}, {"resolution": "5m"}, {"since": "yesterday"}])
def test_bad_stats_parameters_are_400(http: httpx.Client, sentry: SentryStandIn, params: dict) -> None:
    response = http.get(sentry.url + STATS, params=params, headers=AUTH)
    assert response.status_code == 400 and "detail" in response.json()


def test_error_rate_follows_from_stats_v2(http: httpx.Client, sentry_at: SentryStandIn, clock: Clock) -> None:
    sentry_at.record_requests(total=400, errors=12)
    clock.at += timedelta(minutes=2)
    sentry_at.record_requests(total=600, errors=58)
    project_id = sentry_at.project_id("emotionscare")
    body = http.get(
        sentry_at.url + "/api/0/organizations/emotionscare/stats_v2/",
        params={
            "field": "sum(quantity)",
            "groupBy": "category",
            "category": ["error", "transaction"],
            "project": project_id,
            "statsPeriod": "5m",
            "interval": "1m",
        },
        headers=AUTH,
    ).json()
    totals = {g["by"]["category"]: g["totals"]["sum(quantity)"] for g in body["groups"]}
    assert totals == {"error": 70, "transaction": 1000}
    assert 100 * totals["error"] / totals["transaction"] == pytest.approx(7.0)
    assert len(body["intervals"]) == len(body["groups"][0]["series"]["sum(quantity)"])
    assert body["start"].endswith("Z") and body["end"] == "2025-11-14T10:02:05Z"


def test_stats_v2_validates_its_parameters(http: httpx.Client, sentry: SentryStandIn) -> None:
    url = sentry.url + "/api/0/organizations/emotionscare/stats_v2/"
    assert http.get(url, params={"groupBy": "category"}, headers=AUTH).status_code == 400
    assert http.get(url, params={"field": "sum(quantity)"}, headers=AUTH).status_code == 400
    bad_period = {"field": "sum(quantity)", "groupBy": "category", "statsPeriod": "forever"}
    assert http.get(url, params=bad_period, headers=AUTH).status_code == 400
    bad_category = {"field": "sum(quantity)", "groupBy": "category", "category": "errors"}
    assert http.get(url, params=bad_category, headers=AUTH).status_code == 400
    other = {"field": "sum(quantity)", "groupBy": "category", "project": "1"}
    assert http.get(url, params=other, headers=AUTH).status_code == 403


def test_project_details_give_the_numeric_id(http: httpx.Client, sentry: SentryStandIn) -> None:
    body = http.get(sentry.url + "/api/0/projects/emotionscare/worker/", headers=AUTH).json()
    assert body["slug"] == "worker" and body["id"] == sentry.project_id("worker") and body["id"].isdigit()


# -- in-process API and faults ----------------------------------------------------------------------
def test_in_process_api_rejects_bad_input(sentry: SentryStandIn) -> None:
    with pytest.raises(ValueError, match="no Sentry project"):
        sentry.capture_exception("nope", "m", "E", [("a.py", "f", 1)])
    with pytest.raises(ValueError, match="frames"):
        sentry.capture_exception("emotionscare", "m", "E", [])
    with pytest.raises(ValueError, match="level"):
        sentry.capture_exception("emotionscare", "m", "E", [("a.py", "f", 1)], level="loud")
    with pytest.raises(ValueError, match="errors <= total"):
        sentry.record_requests(total=1, errors=2)


@pytest.mark.parametrize(("kind", "status"), [("http_500", 500), ("rate_limited", 429)])
def test_faults_answer_an_error_status_then_recover(
    http: httpx.Client, sentry: SentryStandIn, kind: str, status: int
) -> None:
    sentry.fail_next(1, kind)  # type: ignore[arg-type]
    assert http.get(sentry.url + ISSUES, headers=AUTH).status_code == status
    assert http.get(sentry.url + ISSUES, headers=AUTH).status_code == 200


def test_fault_timeout_times_the_client_out(http: httpx.Client, sentry: SentryStandIn) -> None:
    sentry.fail_next(1, "timeout", delay_s=10.0)
    with pytest.raises(httpx.ReadTimeout):
        http.get(sentry.url + ISSUES, headers=AUTH, timeout=0.2)


def test_reset_forgets_issues_and_traffic(http: httpx.Client, sentry: SentryStandIn) -> None:
    capture(sentry)
    sentry.record_requests(10, 1)
    sentry.reset()
    assert sentry.issues() == []
    assert sum(c for _, c in http.get(sentry.url + STATS, headers=AUTH).json()) == 0
