"""Message metadata as Slack has it, and held calls (sandbox/holds.py) on the Slack and PagerDuty stand-ins."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from sandbox.pagerduty import PagerDutyStandIn
from sandbox.slack import SlackStandIn

TOKEN = "xoxb-test-0000-token"
PD_KEY = "R0TESTROUTINGKEY0000000000000001"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
META = {"event_type": "incident_runbook_message", "event_payload": {"claim": "i1:slack:C0:ack"}}


def _call(http: httpx.Client, slack: SlackStandIn, method: str, **args: Any) -> dict[str, Any]:
    response = http.post(f"{slack.url}/api/{method}", headers=AUTH, json=args)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_metadata_is_kept_and_returned_only_when_asked_for(slack: SlackStandIn, http: httpx.Client) -> None:
    parent = _call(http, slack, "chat.postMessage", channel="#incidents", text="P1", metadata=META)
    assert parent["ok"] and parent["message"]["metadata"] == META
    reply = _call(
        http,
        slack,
        "chat.postMessage",
        channel=parent["channel"],
        text="r",
        thread_ts=parent["ts"],
        metadata=META,
    )
    assert reply["ok"]

    plain = _call(http, slack, "conversations.replies", channel=parent["channel"], ts=parent["ts"])
    assert all("metadata" not in m for m in plain["messages"])
    full = _call(
        http,
        slack,
        "conversations.replies",
        channel=parent["channel"],
        ts=parent["ts"],
        include_all_metadata=True,
    )
    assert [m.get("metadata") for m in full["messages"]] == [META, META]
    history = _call(
        http, slack, "conversations.history", channel=parent["channel"], include_all_metadata="true"
    )
    assert history["messages"][0]["metadata"] == META


def test_form_encoded_metadata_arrives_as_json(slack: SlackStandIn, http: httpx.Client) -> None:
    import json

    response = http.post(
        f"{slack.url}/api/chat.postMessage",
        data={"token": TOKEN, "channel": "#incidents", "text": "x", "metadata": json.dumps(META)},
    )
    assert response.json()["message"]["metadata"] == META


@pytest.mark.parametrize(
    "metadata",
    ["{not json", {"event_type": "x"}, {"event_payload": {}}, {"event_type": "", "event_payload": {}}, [1]],
)
def test_malformed_metadata_is_invalid_metadata_format(
    slack: SlackStandIn, http: httpx.Client, metadata: Any
) -> None:
    body = _call(http, slack, "chat.postMessage", channel="#incidents", text="x", metadata=metadata)
    assert body == {"ok": False, "error": "invalid_metadata_format"}
    assert slack.messages("incidents") == []


@pytest.mark.parametrize("landed", [True, False])
def test_a_held_post_waits_for_release_and_lands_only_when_asked(
    slack: SlackStandIn, http: httpx.Client, landed: bool
) -> None:
    hold = slack.hold_next("chat.postMessage", landed=landed)
    answers: list[int] = []
    sender = threading.Thread(
        target=lambda: answers.append(
            http.post(
                f"{slack.url}/api/chat.postMessage",
                headers=AUTH,
                json={"channel": "#incidents", "text": "x"},
                timeout=30,
            ).status_code
        )
    )
    sender.start()
    assert hold.reached.wait(10)
    assert [m["text"] for m in slack.messages("incidents")] == (["x"] if landed else [])
    assert answers == []  # still held
    hold.release()
    sender.join(10)
    assert answers == [200 if landed else 503]
    assert [m["text"] for m in slack.messages("incidents")] == (["x"] if landed else [])
    assert _call(http, slack, "chat.postMessage", channel="#incidents", text="y")["ok"]  # one call only


def test_a_held_pagerduty_event_is_applied_only_when_landed(
    pagerduty: PagerDutyStandIn, http: httpx.Client
) -> None:
    hold = pagerduty.hold_next(landed=False)
    event = {
        "routing_key": PD_KEY,
        "event_action": "trigger",
        "dedup_key": "i1",
        "payload": {"summary": "down", "source": "svc", "severity": "critical"},
    }
    answers: list[int] = []
    sender = threading.Thread(
        target=lambda: answers.append(
            http.post(f"{pagerduty.url}/v2/enqueue", json=event, timeout=30).status_code
        )
    )
    sender.start()
    assert hold.reached.wait(10)
    hold.release()
    sender.join(10)
    assert answers == [503] and pagerduty.alerts() == []


def test_stopping_releases_a_held_call(http: httpx.Client) -> None:
    slack = SlackStandIn(token=TOKEN).start()
    hold = slack.hold_next("auth.test", landed=True)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            http.post(f"{slack.url}/api/auth.test", headers=AUTH, timeout=30)
        except httpx.HTTPError as exc:
            errors.append(exc)

    sender = threading.Thread(target=call)
    sender.start()
    assert hold.reached.wait(10)
    slack.stop()  # must not wait for the hold's bound
    sender.join(10)
    assert not sender.is_alive()
