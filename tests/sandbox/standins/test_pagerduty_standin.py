"""The PagerDuty Events API v2 stand-in: 202 on valid events, 400 with errors, the dedup_key lifecycle."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.pagerduty import PagerDutyStandIn

KEY = "R0TESTROUTINGKEY0000000000000001"


def trigger(dedup_key: str | None = "incident-42", **payload: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": KEY,
        "event_action": "trigger",
        "payload": {
            "summary": "emotionscare down",
            "source": "emotionscare",
            "severity": "critical",
            **payload,
        },
    }
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    return event


def follow_up(action: str, dedup_key: str = "incident-42") -> dict[str, Any]:
    return {"routing_key": KEY, "event_action": action, "dedup_key": dedup_key}


def send(http: httpx.Client, pd: PagerDutyStandIn, event: Any, timeout: float = 2.0) -> httpx.Response:
    return http.post(f"{pd.url}/v2/enqueue", json=event, timeout=timeout)


def test_trigger_is_accepted_with_its_dedup_key(http: httpx.Client, pagerduty: PagerDutyStandIn) -> None:
    response = send(http, pagerduty, trigger(component="api", custom_details={"error_rate_pct": 12}))
    assert response.status_code == 202
    assert response.json() == {"status": "success", "message": "Event processed", "dedup_key": "incident-42"}
    alert = pagerduty.alert("incident-42")
    assert alert is not None
    assert (alert.status, alert.summary, alert.source, alert.severity) == (
        "triggered",
        "emotionscare down",
        "emotionscare",
        "critical",
    )
    assert alert.payload["custom_details"] == {"error_rate_pct": 12}
    assert pagerduty.requests[0].body["routing_key"] == KEY


def test_trigger_without_dedup_key_gets_a_generated_one(
    http: httpx.Client, pagerduty: PagerDutyStandIn
) -> None:
    first = send(http, pagerduty, trigger(dedup_key=None)).json()["dedup_key"]
    second = send(http, pagerduty, trigger(dedup_key=None)).json()["dedup_key"]
    assert first and second and first != second
    assert [a.dedup_key for a in pagerduty.alerts()] == [first, second]


def test_dedup_key_lifecycle(http: httpx.Client, pagerduty: PagerDutyStandIn) -> None:
    assert send(http, pagerduty, trigger()).status_code == 202
    assert send(http, pagerduty, follow_up("acknowledge")).status_code == 202
    alert = pagerduty.alert("incident-42")
    assert alert is not None and alert.status == "acknowledged" and alert.acknowledged_at is not None

    # a repeated trigger joins the open alert and does not un-acknowledge it
    assert send(http, pagerduty, trigger()).json()["dedup_key"] == "incident-42"
    assert alert.trigger_count == 2 and alert.status == "acknowledged"
    assert len(pagerduty.alerts()) == 1

    assert send(http, pagerduty, follow_up("resolve")).status_code == 202
    assert alert.status == "resolved" and alert.resolved_at is not None

    # after resolve: acknowledge is accepted then dropped; a trigger opens a new alert
    assert send(http, pagerduty, follow_up("acknowledge")).status_code == 202
    assert [e["event_action"] for e in pagerduty.dropped_events] == ["acknowledge"]
    send(http, pagerduty, trigger())
    assert [a.status for a in pagerduty.alerts()] == ["resolved", "triggered"]
    assert [e["event_action"] for e in alert.events] == ["trigger", "acknowledge", "trigger", "resolve"]


def test_resolve_without_an_open_alert_is_accepted_and_dropped(
    http: httpx.Client, pagerduty: PagerDutyStandIn
) -> None:
    assert send(http, pagerduty, follow_up("resolve", "never-triggered")).status_code == 202
    assert pagerduty.alert("never-triggered") is None
    assert len(pagerduty.dropped_events) == 1


def test_a_person_acknowledging_in_pagerduty(http: httpx.Client, pagerduty: PagerDutyStandIn) -> None:
    send(http, pagerduty, trigger())
    pagerduty.acknowledge_as_user("incident-42")
    assert [a.status for a in pagerduty.alerts("acknowledged")] == ["acknowledged"]
    with pytest.raises(KeyError):
        pagerduty.acknowledge_as_user("nope")


def _without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    if len(path) == 1:
        return {k: v for k, v in event.items() if k != path[0]}
    return {**event, path[0]: _without(event[path[0]], *path[1:])}


@pytest.mark.parametrize(
    ("event", "expected_error"),
    [
        (_without(trigger(), "routing_key"), "'routing_key' is missing or blank"),
        (
            {**trigger(), "routing_key": "short"},
            "Length of 'routing_key' is incorrect (should be 32 characters)",
        ),
        ({**trigger(), "routing_key": "R0TESTROUTINGKEY000000000000000-"}, "cannot contain non-alphanumeric"),
        (_without(trigger(), "event_action"), "'event_action' is missing or blank"),
        ({**trigger(), "event_action": "escalate"}, "'event_action' is invalid"),
        (_without(trigger(), "payload"), "'payload' is missing or blank"),
        (_without(trigger(), "payload", "summary"), "'payload.summary' is missing or blank"),
        (_without(trigger(), "payload", "source"), "'payload.source' is missing or blank"),
        (_without(trigger(), "payload", "severity"), "'payload.severity' is missing or blank"),
        (trigger(severity="P1"), "'payload.severity' is invalid"),
        (trigger(summary="x" * 1025), "'payload.summary' is too long"),
        (trigger(dedup_key="k" * 256), "'dedup_key' is too long"),
        (_without(follow_up("acknowledge"), "dedup_key"), "'dedup_key' is missing or blank"),
        (_without(follow_up("resolve"), "dedup_key"), "'dedup_key' is missing or blank"),
        (["not", "an", "object"], "must be a JSON object"),
    ],
)
def test_invalid_events_are_400_with_the_errors_listed(
    http: httpx.Client, pagerduty: PagerDutyStandIn, event: Any, expected_error: str
) -> None:
    response = send(http, pagerduty, event)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert any(expected_error in e for e in body["errors"]), body["errors"]
    assert pagerduty.alerts() == []


def test_every_problem_is_listed_at_once(http: httpx.Client, pagerduty: PagerDutyStandIn) -> None:
    body = send(http, pagerduty, {"routing_key": "x", "event_action": "trigger", "payload": {}}).json()
    assert len(body["errors"]) == 4  # key length + summary + source + severity


def test_a_body_that_is_not_json_is_400(http: httpx.Client, pagerduty: PagerDutyStandIn) -> None:
    response = http.post(
        f"{pagerduty.url}/v2/enqueue", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["status"] == "invalid event"


def test_a_well_formed_but_unknown_routing_key_is_400_invalid_routing_key(
    http: httpx.Client, pagerduty: PagerDutyStandIn
) -> None:
    response = send(http, pagerduty, {**trigger(), "routing_key": "R0SOMEBODYELSESKEY00000000000001"})
    assert response.status_code == 400
    assert response.json() == {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["Invalid routing key"],
    }


def test_only_post_is_served(http: httpx.Client, pagerduty: PagerDutyStandIn) -> None:
    assert http.get(f"{pagerduty.url}/v2/enqueue").status_code == 405


def test_fault_http_500_then_recovers(http: httpx.Client, pagerduty: PagerDutyStandIn) -> None:
    pagerduty.fail_next(1, "http_500")
    assert send(http, pagerduty, trigger()).status_code == 500
    assert pagerduty.alert("incident-42") is None
    assert send(http, pagerduty, trigger()).status_code == 202


def test_fault_rate_limited_is_429(http: httpx.Client, pagerduty: PagerDutyStandIn) -> None:
    pagerduty.fail_next(2, "rate_limited", retry_after_s=3)
    responses = [send(http, pagerduty, trigger()) for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 202]
    assert responses[0].headers["retry-after"] == "3"


def test_fault_timeout_times_the_client_out(http: httpx.Client, pagerduty: PagerDutyStandIn) -> None:
    pagerduty.fail_next(1, "timeout", delay_s=10.0)
    with pytest.raises(httpx.ReadTimeout):
        send(http, pagerduty, trigger(), timeout=0.2)
    assert send(http, pagerduty, trigger()).status_code == 202


def test_reset_forgets_alerts(http: httpx.Client, pagerduty: PagerDutyStandIn) -> None:
    send(http, pagerduty, trigger())
    pagerduty.reset()
    assert pagerduty.alerts() == [] and pagerduty.requests == []
