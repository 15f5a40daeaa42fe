"""P1 › External API Failure, against the sandbox's Hume/OpenAI/Spotify stand-ins and the cluster."""

from __future__ import annotations

import threading

from flows.external_api_failure import external_api_failure
from runbook.models import ActionStatus, RunbookOutcome
from sandbox.testing import wait_for

FLAG = "FEATURE_MUSIC_GENERATION_ENABLED"


def _notifications(world) -> list[dict]:
    return [{k: n[k] for k in ("type", "feature")} for n in world.service.notifications]


def test_flag_off_notify_poll_until_back_flag_on(world) -> None:
    world.inject("api-down", "hume", mode="5xx")
    health = world.apis.api("hume").health_path
    flag_seen_off = threading.Event()

    def api_comes_back_after_two_polls() -> None:
        # the initial check plus two polls reach the stand-in; by then the flag must be off
        wait_for(lambda: len(world.apis.api("hume").server.requests_to(health)) >= 3, timeout_s=30)
        if world.live_env()[FLAG] == "false":
            flag_seen_off.set()
        world.clear("api-down")

    helper = threading.Thread(target=api_comes_back_after_two_polls)
    helper.start()
    result = external_api_failure(poll_interval_s=0.05, recovery_deadline_s=30)
    helper.join(timeout=30)

    assert result.outcome == RunbookOutcome.RECOVERED, result.summary
    assert flag_seen_off.is_set()  # the feature was disabled while Hume was down
    assert world.live_env()[FLAG] == "true"  # and is on again
    assert [(a.action, a.status) for a in result.actions] == [
        ("disable-feature", ActionStatus.SUCCEEDED),
        ("notify-users", ActionStatus.SUCCEEDED),
        ("enable-feature", ActionStatus.SUCCEEDED),
        ("notify-users", ActionStatus.SUCCEEDED),
    ]
    assert _notifications(world) == [
        {"type": "maintenance", "feature": "music"},
        {"type": "maintenance-over", "feature": "music"},
    ]
    monitor = [e.message for e in result.timeline if e.kind == "monitor"]
    assert monitor[-1].startswith("after ") and "back ['hume']" in monitor[-1]
    attempts = int(monitor[-1].split()[1])
    assert attempts >= 2  # it polled, it did not just look once


def test_an_api_that_never_returns_escalates_at_the_deadline_with_the_flag_left_off(world) -> None:
    world.inject("api-down", "hume", mode="refused")

    result = external_api_failure(apis=["hume"], poll_interval_s=0.05, recovery_deadline_s=0.5)

    assert result.outcome == RunbookOutcome.ESCALATED
    assert "hume still down" in result.summary
    assert world.live_env()[FLAG] == "false"
    assert _notifications(world) == [{"type": "maintenance", "feature": "music"}]
    monitor = [e.message for e in result.timeline if e.kind == "monitor"]
    attempts = int(monitor[-1].split()[1])
    assert 2 <= attempts <= 12  # bounded by the deadline: 0.5 s at 0.05 s intervals


def test_the_poll_survives_probe_errors(world, monkeypatch) -> None:
    import flows.external_api_failure as module

    world.inject("api-down", "openai", mode="5xx")
    real = module.probe_url
    calls = {"n": 0}

    def flaky(url, timeout_s):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("probe crashed")
        if calls["n"] >= 3:
            world.clear("api-down")
        return real(url, timeout_s)

    monkeypatch.setattr(module, "probe_url", flaky)

    result = external_api_failure(apis=["openai"], poll_interval_s=0.05, recovery_deadline_s=10)

    assert result.outcome == RunbookOutcome.RECOVERED, result.summary
    assert world.live_env()["FEATURE_AI_COACH_ENABLED"] == "true"


def test_every_api_up_changes_nothing(world) -> None:
    result = external_api_failure(poll_interval_s=0.05, recovery_deadline_s=1)
    assert result.outcome == RunbookOutcome.RECOVERED_BY_ITSELF
    assert result.actions == []


def test_an_unknown_api_name_is_refused_by_name(world) -> None:
    import pytest

    with pytest.raises(ValueError, match=r"apis: unknown \['stripe'\]"):
        external_api_failure(apis=["stripe"], poll_interval_s=0.05, recovery_deadline_s=1)
