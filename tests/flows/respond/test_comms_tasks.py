"""tasks/slack.py and tasks/pagerduty.py against the Slack and PagerDuty stand-ins, over real HTTP.

Bounded retries on what is transient (5xx, 429, timeouts, Slack's transient `ok:false` codes), at once
on what is not, no double post when an answer is lost, and secrets in no message or log line.
"""

from __future__ import annotations

import logging

import pytest

from sandbox.pagerduty import PagerDutyStandIn
from sandbox.slack import SlackStandIn
from tasks import runtime
from tasks.pagerduty import PagerDutyFailed, PagerDutyNotConfigured, send_event
from tasks.slack import SlackFailed, SlackNotConfigured, read_reactions, send_message, whoami

from .conftest import PD_KEY, SECRETS, SLACK_TOKEN
from .support import body, slack_calls

pytestmark = pytest.mark.usefixtures("comms_env")


# -- Slack ----------------------------------------------------------------------------------------------
def test_post_then_reply_in_the_thread_with_bearer_auth(slack: SlackStandIn) -> None:
    parent = send_message("#incidents", "🔴 [P1 - CRITICAL] emotionscare down")
    reply = send_message(parent.channel, "Assessment: application crash", thread_ts=parent.ts)
    thread = slack.thread("incidents", parent.ts)
    assert [m["text"] for m in thread] == [
        "🔴 [P1 - CRITICAL] emotionscare down",
        "Assessment: application crash",
    ]
    assert reply.thread_ts == parent.ts and parent.channel.startswith("C0")
    for request in slack_calls(slack.requests, "chat.postMessage"):
        assert request.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
        assert "token" not in body(request)


def test_a_permanent_error_fails_at_once(slack: SlackStandIn) -> None:
    with pytest.raises(SlackFailed) as failed:
        send_message("#no-such-channel", "hello")
    assert (failed.value.error, failed.value.transient, failed.value.attempts) == (
        "channel_not_found",
        False,
        1,
    )
    assert len(slack_calls(slack.requests)) == 1


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("http_500", {}), ("ok_false", {"error": "internal_error"}), ("rate_limited", {"retry_after_s": 7})],
)
def test_transient_failures_are_retried_and_post_once(slack: SlackStandIn, kind: str, extra: dict) -> None:
    slack.fail_next(2, kind, **extra)  # type: ignore[arg-type]
    posted = send_message("#incidents", "status update 1")
    # after a 5xx the post may have landed, so a look at the history comes first (it may meet the
    # second failure itself); either way the message is posted once, within the 3 attempts
    assert posted.attempts == (2 if kind == "http_500" else 3)
    assert [m["text"] for m in slack.messages("incidents")] == ["status update 1"]


def test_retries_are_bounded(slack: SlackStandIn) -> None:
    slack.fail_next(5, "http_500")
    with pytest.raises(SlackFailed) as failed:
        send_message("#incidents", "never lands")
    assert (failed.value.error, failed.value.transient, failed.value.attempts) == ("http_500", True, 3)
    assert slack.messages("incidents") == []
    assert len(slack_calls(slack.requests, "chat.postMessage")) == 3


def test_a_lost_answer_is_looked_for_before_posting_again(slack: SlackStandIn) -> None:
    parent = send_message("#incidents", "thread")
    # The post is carried out after our 1 s timeout; when we look (the replies call waits 0.6 s on the
    # server), it is there: no second post.
    slack.server.inject(1, delay_s=1.3, matches=lambda r: r.path == "/api/chat.postMessage")
    slack.server.inject(1, delay_s=0.6, matches=lambda r: r.path == "/api/conversations.replies")
    posted = send_message(parent.channel, "update", thread_ts=parent.ts)
    assert posted.found_after_lost_answer
    assert [m["text"] for m in slack.thread("incidents", parent.ts)] == ["thread", "update"]
    assert [r.path for r in slack_calls(slack.requests)][-2:] == [
        "/api/chat.postMessage",
        "/api/conversations.replies",
    ]


def test_a_post_that_never_landed_is_posted_again(slack: SlackStandIn) -> None:
    parent = send_message("#incidents", "thread")
    slack.fail_next(1, "timeout", delay_s=30)  # held until the stand-in stops: never carried out
    posted = send_message(parent.channel, "update", thread_ts=parent.ts)
    assert posted.attempts == 2 and not posted.found_after_lost_answer
    assert [m["text"] for m in slack.thread("incidents", parent.ts)] == ["thread", "update"]


def test_reactions_and_who_we_are(slack: SlackStandIn) -> None:
    parent = send_message("#alerts-critical", "acknowledged")
    slack.add_reaction_as_user("alerts-critical", parent.ts, "eyes", "U0ALICE")
    reactions = read_reactions(parent.channel, parent.ts)
    assert [(r.name, r.users) for r in reactions] == [("eyes", ["U0ALICE"])]
    assert whoami().startswith("U0") and whoami() != "U0ALICE"


def test_no_token_means_not_configured_and_nothing_sent(
    slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNBOOK_SLACK_TOKEN")
    runtime.reset()
    with pytest.raises(SlackNotConfigured):
        send_message("#incidents", "x")
    assert slack.requests == []


def test_a_wrong_token_is_invalid_auth_and_not_shown(
    slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNBOOK_SLACK_TOKEN", "xoxb-wrong-secret-value")
    runtime.reset()
    with pytest.raises(SlackFailed) as failed:
        send_message("#incidents", "x")
    assert failed.value.error == "invalid_auth" and "xoxb-wrong" not in str(failed.value)


def test_empty_text_is_refused_before_any_call(slack: SlackStandIn) -> None:
    with pytest.raises(ValueError, match="text"):
        send_message("#incidents", "  ")
    assert slack.requests == []


# -- PagerDuty ------------------------------------------------------------------------------------------
def test_one_dedup_key_trigger_acknowledge_resolve(pagerduty: PagerDutyStandIn) -> None:
    key = "incident-1"
    sent = send_event("trigger", key, summary="[P1] emotionscare down", source="emotionscare")
    send_event("trigger", key, summary="[P1] escalated to the team lead", source="emotionscare")
    assert pagerduty.alert(key) is not None and pagerduty.alert(key).status == "triggered"  # type: ignore[union-attr]
    send_event("acknowledge", key)
    assert pagerduty.alert(key).status == "acknowledged"  # type: ignore[union-attr]
    send_event("resolve", key)
    alert = pagerduty.alert(key)
    assert alert is not None and alert.status == "resolved" and alert.trigger_count == 2
    assert sent.dedup_key == key and len(pagerduty.alerts()) == 1
    assert {r.json()["dedup_key"] for r in pagerduty.requests} == {key}


@pytest.mark.parametrize("kind", ["http_500", "rate_limited"])
def test_pagerduty_transient_failures_are_retried(pagerduty: PagerDutyStandIn, kind: str) -> None:
    pagerduty.fail_next(2, kind)  # type: ignore[arg-type]
    sent = send_event("trigger", "incident-2", summary="down", source="emotionscare")
    assert sent.attempts == 3 and len(pagerduty.alerts()) == 1


def test_pagerduty_timeout_is_retried(pagerduty: PagerDutyStandIn) -> None:
    pagerduty.fail_next(1, "timeout", delay_s=30)
    sent = send_event("trigger", "incident-3", summary="down", source="emotionscare")
    assert sent.attempts == 2 and len(pagerduty.alerts()) == 1


def test_pagerduty_retries_are_bounded(pagerduty: PagerDutyStandIn) -> None:
    pagerduty.fail_next(5, "http_500")
    with pytest.raises(PagerDutyFailed) as failed:
        send_event("resolve", "incident-4")
    assert (failed.value.transient, failed.value.attempts) == (True, 3)


def test_an_invalid_event_fails_at_once_without_showing_the_key(
    pagerduty: PagerDutyStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNBOOK_PAGERDUTY_ROUTING_KEY", "R0NOTAKNOWNINTEGRATIONKEY0000009")
    runtime.reset()
    with pytest.raises(PagerDutyFailed) as failed:
        send_event("trigger", "incident-5", summary="down", source="emotionscare")
    assert failed.value.transient is False and failed.value.attempts == 1
    assert "Invalid routing key" in str(failed.value) and "R0NOTAKNOWN" not in str(failed.value)


def test_pagerduty_not_configured(pagerduty: PagerDutyStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_PAGERDUTY_ROUTING_KEY")
    runtime.reset()
    with pytest.raises(PagerDutyNotConfigured):
        send_event("trigger", "incident-6", summary="down", source="emotionscare")
    assert pagerduty.requests == []


def test_bad_arguments_are_refused(pagerduty: PagerDutyStandIn) -> None:
    with pytest.raises(ValueError, match="dedup_key"):
        send_event("resolve", " ")
    with pytest.raises(ValueError, match="summary"):
        send_event("trigger", "k")
    assert pagerduty.requests == []


def test_no_secret_in_any_log_line_or_error(
    slack: SlackStandIn, pagerduty: PagerDutyStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.fail_next(3, "rate_limited")
    pagerduty.fail_next(3, "http_500")
    errors: list[str] = []
    for attempt in (
        lambda: send_message("#incidents", "x"),
        lambda: send_event("trigger", "k", summary="s", source="emotionscare"),
    ):
        with pytest.raises((SlackFailed, PagerDutyFailed)) as failed:
            attempt()
        errors.append(repr(failed.value) + str(failed.value.__cause__))
    assert "retrying" in caplog.text
    for secret in SECRETS:
        assert secret not in caplog.text
        assert all(secret not in e for e in errors)
    assert PD_KEY not in caplog.text
