"""The HTTP API: recorded payloads accepted and stored; 401/400/413/415/422 with reasons, nothing stored."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from intake.auth import sentry_signature
from intake.ingest import ALL_CLEAR_KIND
from intake.outbox import Outbox

DATA = Path(__file__).resolve().parents[1] / "data"
AUTH = {
    "alertmanager": {"Authorization": "Bearer am-token"},
    "grafana": {"Authorization": "Bearer gf-token"},
    "generic": {"Authorization": "Bearer gen-token"},
}
JSON = {"Content-Type": "application/json"}


def sentry_headers(body: bytes, resource: str, secret: str = "sentry-client-secret") -> dict[str, str]:
    """What Sentry sends: its timestamp is now (unix seconds), its Request-ID new for every delivery."""
    return {
        **JSON,
        "Sentry-Hook-Resource": resource,
        "Sentry-Hook-Timestamp": str(int(time.time())),
        "Sentry-Hook-Signature": sentry_signature(secret, body),
        "Request-ID": str(uuid.uuid4()),
    }


def nothing_stored(store: Any, outbox: Outbox) -> bool:
    return store.list_alerts() == [] and outbox.depth() == 0


def post(client: httpx.Client, source: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        f"/alerts/{source}", content=body, headers={**JSON, **AUTH.get(source, {}), **(headers or {})}
    )


def test_alertmanager_group_is_stored_and_opens_three_incidents(
    client: httpx.Client, store: Any, outbox: Outbox
) -> None:
    body = (DATA / "alertmanager_group_3_firing_1_resolved.json").read_bytes()

    answer = post(client, "alertmanager", body)

    assert answer.status_code == 202, answer.text
    receipt = answer.json()
    assert receipt["accepted"] == 4
    assert len(receipt["incidents_created"]) == 3
    assert receipt["resolved_without_open_incident"] == 1
    stored = store.list_alerts()
    assert sorted(a.name for a in stored) == [
        "HighErrorRate",
        "HighLatencyP95",
        "HighMemoryUsage",
        "ServiceDown",
    ]
    assert {a.raw_ref for a in stored} == {receipt["raw_id"]}
    assert outbox.depth() == 3  # one respond run to start per incident
    down = store.find_open_incident("alertmanager:5c3b2a91de07f4a1")
    assert (down.severity.value, down.severity_rule, down.runbook) == (
        "P1",
        "p1.service_unreachable",
        "service-down",
    )


def test_the_same_alert_again_joins_its_incident(client: httpx.Client, store: Any, outbox: Outbox) -> None:
    body = (DATA / "alertmanager_probe_failure.json").read_bytes()

    first = post(client, "alertmanager", body).json()
    second = post(client, "alertmanager", body).json()

    assert len(first["incidents_created"]) == 1
    assert second["incidents_created"] == []
    assert second["incidents_joined"] == first["incidents_created"]
    assert store.find_open_incident("alertmanager:1a30ba71cca2921f").alert_count == 2
    assert outbox.depth() == 1


def test_resolved_alert_marks_the_open_incident_for_the_all_clear(client: httpx.Client, store: Any) -> None:
    fired = post(client, "grafana", (DATA / "grafana_firing.json").read_bytes()).json()
    resolved = post(client, "grafana", (DATA / "grafana_resolved.json").read_bytes()).json()

    incident = store.find_open_incident("grafana:c6eadffa33fcdf37")
    assert resolved["incidents_marked_resolved"] == [incident.id]
    assert incident.id in fired["incidents_created"]
    marks = [e for e in store.timeline(incident.id) if e.kind == ALL_CLEAR_KIND]
    assert len(marks) == 1 and marks[0].actor == "intake"
    assert incident.status.value == "triggered"  # the flow verifies before resolving


@pytest.mark.parametrize(
    ("fixture", "resource"),
    [
        ("sentry_event_alert.json", "event_alert"),
        ("sentry_metric_alert_critical.json", "metric_alert"),
    ],
)
def test_signed_sentry_webhooks_are_accepted(
    client: httpx.Client, store: Any, fixture: str, resource: str
) -> None:
    body = (DATA / fixture).read_bytes()

    answer = client.post("/alerts/sentry", content=body, headers=sentry_headers(body, resource))

    assert answer.status_code == 202, answer.text
    assert len(answer.json()["incidents_created"]) == 1


def test_sentry_issue_resolved_marks_the_issue_alert_incident(client: httpx.Client, store: Any) -> None:
    fired = (DATA / "sentry_event_alert.json").read_bytes()
    resolved = (DATA / "sentry_issue_resolved.json").read_bytes()
    client.post("/alerts/sentry", content=fired, headers=sentry_headers(fired, "event_alert"))

    answer = client.post("/alerts/sentry", content=resolved, headers=sentry_headers(resolved, "issue"))

    incident = store.find_open_incident("sentry:issue:4711000001")
    assert answer.json()["incidents_marked_resolved"] == [incident.id]


def test_generic_payload_is_accepted(client: httpx.Client, store: Any) -> None:
    answer = post(client, "generic", (DATA / "generic_firing.json").read_bytes())

    assert answer.status_code == 202
    [incident_id] = answer.json()["incidents_created"]
    assert store.get_incident(incident_id).runbook == "database-lost"


@pytest.mark.parametrize(
    ("source", "headers", "reason"),
    [
        ("alertmanager", {"Authorization": ""}, "missing bearer token"),
        ("alertmanager", {"Authorization": "Bearer wrong"}, "wrong bearer token for source 'alertmanager'"),
        ("alertmanager", {"Authorization": "Basic YTpi"}, "missing bearer token"),
        ("grafana", {"Authorization": "Bearer am-token"}, "wrong bearer token for source 'grafana'"),
        ("generic", {"Authorization": "Bearer"}, "missing bearer token"),
    ],
)
def test_bad_bearer_tokens_get_401_and_nothing_is_stored(
    client: httpx.Client, store: Any, outbox: Outbox, source: str, headers: dict[str, str], reason: str
) -> None:
    body = (DATA / "generic_firing.json").read_bytes() if source == "generic" else b'{"alerts": []}'

    answer = client.post(f"/alerts/{source}", content=body, headers={**JSON, **headers})

    assert answer.status_code == 401
    assert reason in answer.json()["error"]
    assert nothing_stored(store, outbox)


def test_a_source_without_a_token_is_refused(
    client: httpx.Client, app: Any, store: Any, outbox: Outbox
) -> None:
    app.state.config.tokens.pop("grafana")
    body = (DATA / "grafana_firing.json").read_bytes()

    answer = post(client, "grafana", body)

    assert answer.status_code == 401
    assert "not configured" in answer.json()["error"]
    assert nothing_stored(store, outbox)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda h, b: {k: v for k, v in h.items() if k != "Sentry-Hook-Signature"},
            "missing Sentry-Hook-Signature",
        ),
        (lambda h, b: {**h, "Sentry-Hook-Signature": "0" * 64}, "does not match the body"),
        (
            lambda h, b: {**h, "Sentry-Hook-Signature": sentry_signature("other", b)},
            "does not match the body",
        ),
        (lambda h, b: {**h, "Sentry-Hook-Signature": b"zz\xe9"}, "does not match the body"),
    ],
)
def test_bad_sentry_signatures_get_401_and_nothing_is_stored(
    client: httpx.Client, store: Any, outbox: Outbox, mutate: Any, reason: str
) -> None:
    body = (DATA / "sentry_event_alert.json").read_bytes()
    headers = mutate(sentry_headers(body, "event_alert"), body)

    answer = client.post("/alerts/sentry", content=body, headers=headers)

    assert answer.status_code == 401
    assert reason in answer.json()["error"]
    assert nothing_stored(store, outbox)


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        (None, "missing Sentry-Hook-Timestamp header"),
        ("", "missing Sentry-Hook-Timestamp header"),
        (lambda now: str(int(now) - 301), "s old, outside the 300 s window"),
        (lambda now: str(int(now) - 86_400), "s old, outside the 300 s window (a replay?)"),
        (lambda now: str(int(now) + 400), "s in the future, outside the 300 s window"),
        (lambda now: str(int(now * 1000)), "in the future"),  # milliseconds are not Sentry's format
        ("yesterday", "not a unix time in seconds: 'yesterday'"),
        ("nan", "not a unix time in seconds"),
    ],
)
def test_a_sentry_request_outside_the_timestamp_window_gets_401_and_nothing_is_stored(
    client: httpx.Client, store: Any, outbox: Outbox, timestamp: Any, reason: str
) -> None:
    body = (DATA / "sentry_event_alert.json").read_bytes()
    headers = sentry_headers(body, "event_alert")  # correctly signed
    del headers["Sentry-Hook-Timestamp"]
    if timestamp is not None:
        headers["Sentry-Hook-Timestamp"] = timestamp(time.time()) if callable(timestamp) else timestamp

    answer = client.post("/alerts/sentry", content=body, headers=headers)

    assert answer.status_code == 401, answer.text
    assert reason in answer.json()["error"]
    assert nothing_stored(store, outbox)


def test_a_sentry_timestamp_inside_the_window_is_accepted_either_side_of_now(client: httpx.Client) -> None:
    body = (DATA / "sentry_metric_alert_critical.json").read_bytes()
    for skew in (-290, 0, 290):  # Sentry's clock a little behind or ahead of ours
        headers = {
            **sentry_headers(body, "metric_alert"),
            "Sentry-Hook-Timestamp": str(int(time.time()) + skew),
        }
        assert client.post("/alerts/sentry", content=body, headers=headers).status_code == 202


def test_a_tampered_sentry_body_gets_401(client: httpx.Client, store: Any, outbox: Outbox) -> None:
    body = (DATA / "sentry_event_alert.json").read_bytes()
    headers = sentry_headers(body, "event_alert")

    answer = client.post("/alerts/sentry", content=body.replace(b"[P2]", b"[P4]"), headers=headers)

    assert answer.status_code == 401
    assert nothing_stored(store, outbox)


@pytest.mark.parametrize(
    ("content_type", "code"),
    [
        (None, 415),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/json; charset=utf-8", 202),
        ("application/vnd.alert+json", 202),
    ],
)
def test_content_type(client: httpx.Client, store: Any, content_type: str | None, code: int) -> None:
    headers = {**AUTH["generic"], **({"Content-Type": content_type} if content_type else {})}

    answer = client.post(
        "/alerts/generic", content=(DATA / "generic_firing.json").read_bytes(), headers=headers
    )

    assert answer.status_code == code
    if code == 415:
        assert "Content-Type must be application/json" in answer.json()["error"]


def raw_request(base_url: str, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a hand-made HTTP/1.1 request (headers a client library would refuse to send); status and body."""
    url = httpx.URL(base_url)
    assert url.host and url.port
    data = b""
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        while not _complete(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def _complete(data: bytes) -> bool:
    if b"\r\n\r\n" not in data:
        return False
    head, body = data.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return True


def test_declared_oversized_body_gets_413_before_reading(
    client: httpx.Client, store: Any, outbox: Outbox
) -> None:
    head = (
        "POST /alerts/generic HTTP/1.1\nHost: intake\nAuthorization: Bearer gen-token\n"
        "Content-Type: application/json\nContent-Length: 10485760\n"
    )

    status, body = raw_request(str(client.base_url), head, b'{"alerts": [')  # the rest never comes

    assert status == 413
    assert "over the limit of 65536 bytes" in json.loads(body)["error"]
    assert nothing_stored(store, outbox)


def test_streamed_oversized_body_gets_413_while_reading(
    client: httpx.Client, store: Any, outbox: Outbox
) -> None:
    sent = 0

    def endless() -> Any:  # chunked: no Content-Length, the limit is counted as the body arrives
        nonlocal sent
        for _ in range(32):  # 256 KiB, four times the limit
            sent += 8192
            yield b" " * 8192

    answer = client.post("/alerts/generic", content=endless(), headers={**JSON, **AUTH["generic"]})

    assert answer.status_code == 413
    assert "body is over the limit of 65536 bytes" in answer.json()["error"]
    assert nothing_stored(store, outbox)


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        (b"{not json", 400, "body is not JSON"),
        (b"\xff\xfe\x00", 400, "body is not UTF-8"),
        (b"[1, 2]", 422, "body: expected a JSON object"),
        (b'{"alerts": [{"name": "x", "status": "burning"}]}', 422, "alerts[0].status"),
        (b'{"alerts": [{"summary": "no name"}]}', 422, "alerts[0].name: Field required"),
        (b'{"alerts": []}', 422, "alerts: List should have at least 1 item"),
    ],
)
def test_bad_bodies_get_400_or_422_naming_the_problem(
    client: httpx.Client, store: Any, outbox: Outbox, body: bytes, code: int, reason: str
) -> None:
    answer = post(client, "generic", body)

    assert answer.status_code == code
    assert reason in answer.json()["error"]
    assert nothing_stored(store, outbox)


def test_bad_content_length_is_400(client: httpx.Client) -> None:
    head = (
        "POST /alerts/generic HTTP/1.1\nHost: intake\nAuthorization: Bearer gen-token\n"
        "Content-Type: application/json\nContent-Length: lots\n"
    )

    status, _ = raw_request(str(client.base_url), head, b"{}")

    assert status == 400


def test_unknown_source_is_404(client: httpx.Client) -> None:
    answer = client.post("/alerts/nagios", content=b"{}", headers=JSON)

    assert answer.status_code == 404
    assert "unknown source" in answer.json()["error"]


def test_health_readiness_and_metrics(client: httpx.Client) -> None:
    post(client, "alertmanager", (DATA / "alertmanager_probe_failure.json").read_bytes())
    post(client, "alertmanager", (DATA / "alertmanager_probe_failure.json").read_bytes())
    post(client, "alertmanager", b"{}", headers={"Authorization": "Bearer nope"})

    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    text = client.get("/metrics").text
    assert 'intake_alerts_received_total{source="alertmanager",status="firing"} 2.0' in text
    assert 'intake_alerts_deduplicated_total{source="alertmanager"} 1.0' in text
    assert 'intake_incidents_created_total{source="alertmanager"} 1.0' in text
    assert 'intake_requests_total{code="401",source="alertmanager"} 1.0' in text
    assert "intake_dispatch_queue_depth 1.0" in text
    assert 'intake_request_duration_seconds_count{source="alertmanager"} 3.0' in text


def test_credentials_never_reach_the_stored_headers(client: httpx.Client, store: Any) -> None:
    body = (DATA / "generic_firing.json").read_bytes()

    post(client, "generic", body)

    [alert] = store.list_alerts()
    assert "gen-token" not in json.dumps(alert.model_dump(mode="json"))
