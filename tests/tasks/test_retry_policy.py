"""The declared retry policy (stamina) behind Slack and PagerDuty: Retry-After honoured, attempts bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina.instrumentation

from sandbox.pagerduty import PagerDutyStandIn
from sandbox.slack import SlackStandIn
from tasks import runtime
from tasks.pagerduty import send_event
from tasks.retry import RETRY, RetryPolicy
from tasks.slack import SlackFailed, send_message

SLACK_TOKEN = "xoxb-retry-policy-test-token-01"
PD_KEY = "R0RETRYPOLICYTESTROUTINGKEY00001"
SCALE = 0.001  # every wait a thousandth of the real one: 7 s asked -> 7 ms slept


@pytest.fixture
def stand_ins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[SlackStandIn, PagerDutyStandIn]]:
    slack = SlackStandIn(token=SLACK_TOKEN).start()
    pagerduty = PagerDutyStandIn(routing_keys=[PD_KEY]).start()
    env = {
        "RUNBOOK_ENVIRONMENT": "sandbox",
        "RUNBOOK_STORE_URL": f"sqlite:///{tmp_path / 'incidents.sqlite3'}",
        "RUNBOOK_SLACK_API_URL": f"{slack.url}/api",
        "RUNBOOK_SLACK_TOKEN": SLACK_TOKEN,
        "RUNBOOK_SLACK_TIMEOUT_S": "1.0",
        "RUNBOOK_PAGERDUTY_EVENTS_URL": f"{pagerduty.url}/v2/enqueue",
        "RUNBOOK_PAGERDUTY_ROUTING_KEY": PD_KEY,
        "RUNBOOK_PAGERDUTY_TIMEOUT_S": "1.0",
        "RUNBOOK_RETRY_BACKOFF_SCALE": str(SCALE),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    runtime.reset()
    try:
        yield slack, pagerduty
    finally:
        runtime.reset()
        slack.stop()
        pagerduty.stop()


@pytest.fixture
def waits() -> Iterator[list[float]]:
    """The wait stamina scheduled before each retry (its instrumentation hook), in seconds."""
    seen: list[float] = []
    before = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([lambda details: seen.append(details.wait_for)])
    try:
        yield seen
    finally:
        stamina.instrumentation.set_on_retry_hooks(before)


def test_slack_429_waits_what_retry_after_asks(stand_ins: tuple, waits: list[float]) -> None:
    slack, _ = stand_ins
    slack.fail_next(1, "rate_limited", retry_after_s=7)
    posted = send_message("#incidents", "status update")
    assert posted.attempts == 2
    assert waits == [pytest.approx(7 * SCALE)]
    assert [m["text"] for m in slack.messages("incidents")] == ["status update"]


def test_retry_after_is_capped_by_the_policy(stand_ins: tuple, waits: list[float]) -> None:
    slack, _ = stand_ins
    slack.fail_next(1, "rate_limited", retry_after_s=600)
    send_message("#incidents", "status update")
    assert waits == [pytest.approx(RETRY.cap_s * SCALE)]


def test_pagerduty_429_waits_what_retry_after_asks(stand_ins: tuple, waits: list[float]) -> None:
    _, pagerduty = stand_ins
    pagerduty.fail_next(1, "rate_limited", retry_after_s=3)
    sent = send_event("trigger", "incident-9", summary="down", source="emotionscare")
    assert sent.attempts == 2 and waits == [pytest.approx(3 * SCALE)]


def test_without_retry_after_the_backoff_is_exponential_and_bounded(
    stand_ins: tuple, waits: list[float]
) -> None:
    slack, _ = stand_ins
    slack.fail_next(5, "ok_false", error="internal_error")  # transient, no Retry-After
    policy = RetryPolicy(attempts=3, base_s=1.0, cap_s=30.0)
    with pytest.raises(SlackFailed) as failed:
        send_message("#incidents", "never lands", policy=policy)
    assert failed.value.attempts == 3 and len(waits) == 2
    # stamina: base·2^(n-1) plus up to base/2 of jitter, all scaled
    assert SCALE <= waits[0] <= 1.5 * SCALE and 2 * SCALE <= waits[1] <= 2.5 * SCALE


def test_a_permanent_failure_is_not_retried(stand_ins: tuple, waits: list[float]) -> None:
    with pytest.raises(SlackFailed) as failed:
        send_message("#no-such-channel", "hello")
    assert failed.value.attempts == 1 and waits == []


def test_the_hook_decides_by_the_one_rule_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_RETRY_BACKOFF_SCALE", "1")
    asked = SlackFailed("chat.postMessage", "ratelimited", transient=True, retry_after_s=7)
    assert RETRY.wait_for(asked) == 7.0
    assert RETRY.wait_for(SlackFailed("chat.postMessage", "http_503", transient=True)) is True
    assert RETRY.wait_for(SlackFailed("chat.postMessage", "channel_not_found", transient=False)) is False
    assert RETRY.wait_for(ValueError("a bug")) is False
