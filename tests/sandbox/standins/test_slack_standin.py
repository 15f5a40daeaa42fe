"""The Slack Web API stand-in answers as Slack does: ok/error bodies, threads, reactions, faults."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from sandbox.slack import SlackStandIn, channel_id_for

TOKEN = "xoxb-test-0000-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class SlackApi:
    """Calls the stand-in the way a Slack client does (JSON body, bearer token)."""

    def __init__(self, http: httpx.Client, url: str) -> None:
        self.http = http
        self.url = url

    def call(self, method: str, timeout: float = 2.0, **args: Any) -> dict:
        response = self.http.post(f"{self.url}/api/{method}", headers=AUTH, json=args, timeout=timeout)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, channel: str = "#incidents", text: str = "P1: emotionscare down", **extra: Any) -> dict:
        return self.call("chat.postMessage", channel=channel, text=text, **extra)


@pytest.fixture
def api(http: httpx.Client, slack: SlackStandIn) -> SlackApi:
    return SlackApi(http, slack.url)


# -- auth -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method", ["chat.postMessage", "chat.update", "reactions.add", "conversations.replies", "auth.test"]
)
def test_no_token_is_not_authed_and_a_wrong_one_invalid_auth(
    slack: SlackStandIn, method: str, http: httpx.Client
) -> None:
    url = f"{slack.url}/api/{method}"
    missing = http.post(url, json={"channel": "incidents", "text": "x"}, timeout=2)
    wrong = http.post(
        url, json={"channel": "incidents", "text": "x"}, headers={"Authorization": "Bearer xoxb-nope"}
    )
    assert (missing.status_code, missing.json()) == (200, {"ok": False, "error": "not_authed"})
    assert (wrong.status_code, wrong.json()) == (200, {"ok": False, "error": "invalid_auth"})
    assert slack.messages("incidents") == []


def test_a_token_inside_a_json_body_is_not_read(slack: SlackStandIn, http: httpx.Client) -> None:
    body = http.post(
        f"{slack.url}/api/chat.postMessage",
        json={"token": TOKEN, "channel": "incidents", "text": "x"},
        timeout=2,
    ).json()
    assert body == {"ok": False, "error": "not_authed"}


def test_form_encoded_calls_with_a_token_field_are_accepted(slack: SlackStandIn, http: httpx.Client) -> None:
    body = http.post(
        f"{slack.url}/api/chat.postMessage",
        data={"token": TOKEN, "channel": "incidents", "text": "form post"},
        timeout=2,
    ).json()
    assert body["ok"] is True
    assert slack.messages("incidents")[0]["text"] == "form post"


def test_auth_test_names_the_bot(slack: SlackStandIn, api: SlackApi) -> None:
    body = api.call("auth.test")
    assert body["ok"] is True
    assert (
        body["user_id"].startswith("U") and body["bot_id"].startswith("B") and body["team_id"].startswith("T")
    )


# -- chat.postMessage ---------------------------------------------------------------------------------
@pytest.mark.parametrize("channel", ["#incidents", "incidents", channel_id_for("incidents")])
def test_post_message_by_name_or_id_returns_the_channel_id_and_a_ts(
    slack: SlackStandIn, channel: str, api: SlackApi
) -> None:
    body = api.post(channel=channel)
    assert body["ok"] is True
    assert body["channel"] == channel_id_for("incidents")
    assert re.fullmatch(r"C0[0-9A-F]{9}", body["channel"])
    assert re.fullmatch(r"\d{10}\.\d{6}", body["ts"])
    assert body["message"]["ts"] == body["ts"]
    assert body["message"]["text"] == "P1: emotionscare down"
    assert body["message"]["bot_id"]


def test_ts_is_unique_and_increasing_even_when_the_clock_stands_still(http: httpx.Client) -> None:
    slack = SlackStandIn(token=TOKEN, clock=lambda: 1700000000.0).start()
    try:
        stamps = [SlackApi(http, slack.url).post()["ts"] for _ in range(3)]
    finally:
        slack.stop()
    assert stamps == ["1700000000.000000", "1700000000.000001", "1700000000.000002"]


def test_unknown_channel_and_missing_text_are_slack_errors(slack: SlackStandIn, api: SlackApi) -> None:
    assert api.post(channel="#nowhere") == {"ok": False, "error": "channel_not_found"}
    assert api.call("chat.postMessage", channel="incidents") == {"ok": False, "error": "no_text"}
    assert api.call("chat.postMessage", text="no channel") == {"ok": False, "error": "channel_not_found"}


def test_blocks_alone_are_content(slack: SlackStandIn, api: SlackApi) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*P1*"}}]
    body = api.call("chat.postMessage", channel="incidents", blocks=blocks)
    assert body["ok"] is True
    assert slack.messages("incidents")[0]["blocks"] == blocks


def test_form_encoded_blocks_arrive_as_json(slack: SlackStandIn, http: httpx.Client) -> None:
    http.post(
        f"{slack.url}/api/chat.postMessage",
        headers=AUTH,
        data={"channel": "incidents", "text": "t", "blocks": '[{"type": "divider"}]'},
        timeout=2,
    )
    assert slack.messages("incidents")[0]["blocks"] == [{"type": "divider"}]


# -- threads ------------------------------------------------------------------------------------------
def test_replies_by_thread_ts_form_a_thread(slack: SlackStandIn, api: SlackApi) -> None:
    parent = api.post(text="Incident: emotionscare down")["ts"]
    r1 = api.post(text="Step 1: checking health", thread_ts=parent)
    r2 = api.post(text="Step 2: rolling back", thread_ts=parent)
    assert r1["message"]["thread_ts"] == parent and r2["message"]["thread_ts"] == parent

    assert [m["text"] for m in slack.thread("incidents", parent)] == [
        "Incident: emotionscare down",
        "Step 1: checking health",
        "Step 2: rolling back",
    ]
    assert [m["ts"] for m in slack.messages("incidents")] == [parent]  # replies are not top-level
    replies = api.call("conversations.replies", channel=channel_id_for("incidents"), ts=parent)
    assert replies["ok"] is True and replies["has_more"] is False
    assert [m["ts"] for m in replies["messages"]] == [parent, r1["ts"], r2["ts"]]
    assert replies["messages"][0]["reply_count"] == 2
    # asked by a reply's ts, Slack returns the same thread
    assert (
        api.call("conversations.replies", channel="incidents", ts=r2["ts"])["messages"] == replies["messages"]
    )


def test_conversations_replies_over_get_with_query_parameters(
    slack: SlackStandIn, api: SlackApi, http: httpx.Client
) -> None:
    parent = api.post()["ts"]
    body = http.get(
        f"{slack.url}/api/conversations.replies", params={"channel": "incidents", "ts": parent}, headers=AUTH
    ).json()
    assert [m["ts"] for m in body["messages"]] == [parent]


def test_unknown_thread_and_a_reply_to_nothing(slack: SlackStandIn, api: SlackApi) -> None:
    assert api.call("conversations.replies", channel="incidents", ts="1.000001") == {
        "ok": False,
        "error": "thread_not_found",
    }
    orphan = api.post(text="orphan", thread_ts="1600000000.000001")
    assert orphan["ok"] is True and "thread_ts" not in orphan["message"]
    assert [m["text"] for m in slack.messages("incidents")] == ["orphan"]


def test_conversations_history_lists_top_level_messages_newest_first(
    slack: SlackStandIn, api: SlackApi
) -> None:
    first = api.post(text="one")["ts"]
    api.post(text="reply", thread_ts=first)
    api.post(text="two")
    body = api.call("conversations.history", channel="incidents")
    assert [m["text"] for m in body["messages"]] == ["two", "one"]


# -- chat.update ----------------------------------------------------------------------------------
def test_chat_update_rewrites_the_message(slack: SlackStandIn, api: SlackApi) -> None:
    ts = api.post(text="Status: investigating")["ts"]
    body = api.call("chat.update", channel="incidents", ts=ts, text="Status: resolved")
    assert body["ok"] is True and body["ts"] == ts and body["text"] == "Status: resolved"
    updated = slack.message("incidents", ts)
    assert updated is not None and updated["text"] == "Status: resolved" and "edited" in updated
    assert api.call("chat.update", channel="incidents", ts="1.000001", text="x") == {
        "ok": False,
        "error": "message_not_found",
    }
    assert api.call("chat.update", channel="incidents", ts=ts) == {"ok": False, "error": "no_text"}


def test_chat_update_of_a_persons_message_is_refused(slack: SlackStandIn, api: SlackApi) -> None:
    ts = slack.post_as_user("incidents", "I'm on it", user="U0ALICE")
    assert api.call("chat.update", channel="incidents", ts=ts, text="x") == {
        "ok": False,
        "error": "cant_update_message",
    }


# -- reactions ------------------------------------------------------------------------------------
def test_reactions_add_and_get(slack: SlackStandIn, api: SlackApi) -> None:
    ts = api.post()["ts"]
    assert api.call("reactions.add", channel="incidents", timestamp=ts, name="rotating_light") == {"ok": True}
    assert api.call("reactions.add", channel="incidents", timestamp=ts, name="rotating_light") == {
        "ok": False,
        "error": "already_reacted",
    }
    slack.add_reaction_as_user("incidents", ts, "eyes", "U0ALICE")
    body = api.call("reactions.get", channel=channel_id_for("incidents"), timestamp=ts)
    assert body["ok"] is True and body["type"] == "message" and body["channel"] == channel_id_for("incidents")
    reactions = {r["name"]: r for r in body["message"]["reactions"]}
    assert reactions["eyes"] == {"name": "eyes", "users": ["U0ALICE"], "count": 1}
    assert reactions["rotating_light"]["count"] == 1
    assert slack.reactions("incidents", ts) == body["message"]["reactions"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"channel": "incidents", "name": "eyes"}, "no_item_specified"),
        ({"channel": "incidents", "timestamp": "1600000000.000001", "name": "eyes"}, "message_not_found"),
        ({"channel": "incidents", "timestamp": "yesterday", "name": "eyes"}, "bad_timestamp"),
        ({"channel": "#nowhere", "timestamp": "1600000000.000001", "name": "eyes"}, "channel_not_found"),
        ({"channel": "incidents", "timestamp": "TS", "name": "Not An Emoji!"}, "invalid_name"),
    ],
)
def test_reactions_add_errors(slack: SlackStandIn, args: dict, error: str, api: SlackApi) -> None:
    if args.get("timestamp") == "TS":
        args = {**args, "timestamp": api.post()["ts"]}
    assert api.call("reactions.add", **args) == {"ok": False, "error": error}


# -- faults ---------------------------------------------------------------------------------------
def test_fail_next_http_500_then_recovers(slack: SlackStandIn, http: httpx.Client) -> None:
    slack.fail_next(2, "http_500")
    codes = [
        http.post(
            f"{slack.url}/api/chat.postMessage", headers=AUTH, json={"channel": "incidents", "text": "x"}
        ).status_code
        for _ in range(3)
    ]
    assert codes == [500, 500, 200]
    assert len(slack.messages("incidents")) == 1
    assert len(slack.requests) == 3  # failed calls are recorded too


def test_fail_next_ok_false(slack: SlackStandIn, api: SlackApi) -> None:
    slack.fail_next(1, "ok_false", error="fatal_error")
    assert api.post() == {"ok": False, "error": "fatal_error"}
    assert api.post()["ok"] is True


def test_fail_next_rate_limited_is_429_with_retry_after(slack: SlackStandIn, http: httpx.Client) -> None:
    slack.fail_next(1, "rate_limited", retry_after_s=7)
    response = http.post(
        f"{slack.url}/api/chat.postMessage", headers=AUTH, json={"channel": "incidents", "text": "x"}
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json() == {"ok": False, "error": "ratelimited"}


def test_fail_next_timeout_times_the_client_out(slack: SlackStandIn, api: SlackApi) -> None:
    slack.fail_next(1, "timeout", delay_s=10.0)
    with pytest.raises(httpx.ReadTimeout):
        api.post(timeout=0.2)
    assert api.post()["ok"] is True


def test_unknown_fault_kind_is_refused(slack: SlackStandIn) -> None:
    with pytest.raises(ValueError, match="unknown Slack fault"):
        slack.fail_next(1, "meteor")  # type: ignore[arg-type]


def test_unknown_method_is_404_unknown_method(slack: SlackStandIn, http: httpx.Client) -> None:
    response = http.post(f"{slack.url}/api/chat.fly", headers=AUTH, json={})
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_method"


def test_reset_forgets_messages_requests_and_faults(slack: SlackStandIn, api: SlackApi) -> None:
    api.post()
    slack.fail_next(3, "http_500")
    slack.reset()
    assert slack.messages("incidents") == [] and slack.requests == []
    assert api.post()["ok"] is True


def test_undecodable_form_data_is_invalid_form_data(slack: SlackStandIn, http: httpx.Client) -> None:
    response = http.post(
        f"{slack.url}/api/chat.postMessage",
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        content=b"channel=incidents&text=\xff\xfe",
    )
    assert response.json() == {"ok": False, "error": "invalid_form_data"}
