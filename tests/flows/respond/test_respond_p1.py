"""The P1 timeline end to end against the sandbox world and its Slack, PagerDuty and Sentry stand-ins."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from flows.respond import respond
from runbook.messages import parse_message
from runbook.models import IncidentStatus, RunbookOutcome
from runbook.severity import Severity
from sandbox.testing import wait_for
from sandbox.world import GOOD_IMAGE
from tasks import runtime

from .world import FAST_RUNBOOK, open_incident, posts, ref, text_of

INTERVAL_S = 0.3


def test_p1_bad_deploy_acknowledge_thread_page_assess_triage_rollback_updates_all_clear_resolve(
    world,
) -> None:
    world.inject("bad-deploy")
    assert httpx.get(world.service.url + "/api/health").status_code == 500
    incident = open_incident(Severity.P1, title="Homepage returns 500")

    result = respond(
        incident=ref(incident),
        status_update_interval_s=INTERVAL_S,
        escalation_poll_s=0.05,
        stability_window_s=1.2,
        runbook_options=FAST_RUNBOOK,
    )

    assert result.outcome == RunbookOutcome.ROLLED_BACK, result.summary
    assert world.live_image() == GOOD_IMAGE
    stored = runtime.store().get_incident(incident.id)
    assert stored.status == IncidentStatus.RESOLVED

    sent = posts(world)
    alerts_channel, incidents_channel = (
        world.slack.channel_id("alerts-critical"),
        world.slack.channel_id("incidents"),
    )
    ack = sent[0]
    assert ack.json()["channel"] in ("#alerts-critical", alerts_channel) and "Acknowledged" in text_of(ack)
    thread = sent[1]
    assert thread.json()["channel"] in ("#incidents", incidents_channel) and "thread_ts" not in thread.json()
    parent = world.slack.messages("incidents")
    assert len(parent) == 1 and stored.slack_thread_ts == parent[0]["ts"]
    replies = [r for r in sent[2:] if r.json().get("thread_ts") == stored.slack_thread_ts]
    assert len(replies) == len(sent) - 2, "every later message goes into the thread"

    def first(prefix: str) -> int:
        return next(i for i, r in enumerate(replies) if text_of(r).startswith(prefix))

    assessment, triage, action = first("Assessment"), first("Triage"), first("Action (service-down)")
    all_clear = first("✅ [RESOLVED]")
    assert assessment < triage < action < all_clear
    assert "application crash" in text_of(replies[assessment])
    assert "TypeError" in text_of(replies[assessment])  # Sentry's latest error
    assert "ROLLBACK" in text_of(replies[triage]) and "Fix time 15 min >= 5 min" in text_of(replies[triage])

    # PagerDuty: trigger after the thread, resolve after the all-clear, one dedup_key
    pd = world.pagerduty.requests
    assert [r.json()["event_action"] for r in pd] == ["trigger", "resolve"]
    assert {r.json()["dedup_key"] for r in pd} == {stored.pagerduty_dedup_key}
    assert thread.at < pd[0].at < replies[assessment].at
    assert replies[all_clear].at < pd[1].at
    alert = world.pagerduty.alert(str(stored.pagerduty_dedup_key))
    assert alert is not None and alert.status == "resolved" and alert.trigger_count == 1

    # the rollback happened between the triage decision and the all-clear
    rollback = next(a for a in runtime.store().list_actions(incident.id) if a.action == "rollback")
    assert replies[triage].at < rollback.claimed_at and rollback.finished_at is not None
    assert rollback.finished_at < replies[all_clear].at

    # status updates at the interval, in the guide's format, only while open
    updates = [r for r in replies if text_of(r).startswith("🔴 [P1 - CRITICAL] Homepage returns 500")]
    assert len(updates) >= 3, [text_of(r)[:40] for r in replies]
    assert all(u.at < replies[all_clear].at for u in updates)
    # update n is due at thread + n × interval: each was sent in its own slot, in order
    anchor = float(str(stored.slack_thread_ts))
    slots = [
        (int(a.target.rsplit("-", 1)[1]), a.claimed_at.timestamp() - anchor)
        for a in runtime.store().list_actions(incident.id)
        if a.action == "slack" and ":status-update-" in a.target
    ]
    assert len(slots) == len(updates) and [n for n, _ in slots] == sorted({n for n, _ in slots})
    assert all(n * INTERVAL_S <= at < (n + 1) * INTERVAL_S + 0.5 for n, at in slots), slots
    fields = parse_message(text_of(updates[-1])).fields
    assert list(fields) == ["Time", "Duration", "Impact", "Last Updated", "Next Update"]
    assert fields["Impact"] == "All users affected"
    assert any("✓" in line for line in parse_message(text_of(updates[-1])).sections["Actions Taken"])

    # the all-clear in the guide's format
    clear = parse_message(text_of(replies[all_clear]))
    assert clear.header == "✅ [RESOLVED] Homepage returns 500 Incident"
    assert list(clear.fields) == ["Duration", "Root Cause", "Impact", "Status"]
    assert clear.fields["Status"] == "STABLE ✅"
    assert clear.fields["Root Cause"].startswith("Bad deploy")
    assert "All services back to normal" in "\n".join(clear.sections["Resolution"])
    assert clear.sections["Follow-up"][0].startswith("- Post-mortem scheduled for")


def test_a_second_respond_joins_the_open_incident(world) -> None:
    world.inject("bad-deploy")
    incident = open_incident(Severity.P1)
    options: dict[str, Any] = dict(
        status_update_interval_s=5.0, escalation_poll_s=0.05, runbook_options=FAST_RUNBOOK
    )
    results = {}

    def first() -> None:
        results["first"] = respond(incident=ref(incident), stability_window_s=6.0, **options)

    runner = threading.Thread(target=first)
    runner.start()
    try:
        assert wait_for(lambda: world.pagerduty.requests, 30)
        results["second"] = respond(incident=ref(incident), join_timeout_s=30, **options)
    finally:
        runner.join(timeout=60)
    assert results["first"].outcome == RunbookOutcome.ROLLED_BACK
    assert results["second"].outcome == RunbookOutcome.RECOVERED
    assert results["second"].summary.startswith("joined: resolved by respond run")
    assert len(world.slack.messages("incidents")) == 1  # one thread
    assert len(world.slack.messages("alerts-critical")) == 1
    assert [r.json()["event_action"] for r in world.pagerduty.requests] == ["trigger", "resolve"]
    assert len([a for a in runtime.store().list_actions(incident.id) if a.action == "rollback"]) == 1


def test_a_database_issue_is_triaged_as_a_quick_fix_not_a_rollback(world) -> None:
    world.inject("db-pool-stale")
    incident = open_incident(Severity.P1, name="ApiHealthFailing", title="API health failing")

    result = respond(
        incident=ref(incident),
        status_update_interval_s=5.0,
        stability_window_s=0.3,
        runbook_options=FAST_RUNBOOK,
    )

    assert result.outcome == RunbookOutcome.RECOVERED, result.summary
    triage = next(e for e in runtime.store().timeline(incident.id) if e.kind == "triage")
    assert triage.evidence is not None
    assert (triage.evidence["decision"], triage.evidence["rule"], triage.evidence["runbook"]) == (
        "attempt_fix",
        "fix_lt_limit",
        "database-lost",
    )
    assert "Fix time 2 min < 5 min" in triage.evidence["reason"]
    assert not [a for a in runtime.store().list_actions(incident.id) if a.action == "rollback"]
    assert runtime.store().get_incident(incident.id).status == IncidentStatus.RESOLVED


def test_dry_run_plans_everything_and_sends_nothing(world) -> None:
    world.inject("bad-deploy")
    revision = world.revision()
    incident = open_incident(Severity.P1)

    result = respond(incident=ref(incident), dry_run=True, runbook_options=FAST_RUNBOOK)

    assert result.outcome == RunbookOutcome.DRY_RUN
    assert world.slack.requests == [] and world.pagerduty.requests == []
    assert world.revision() == revision
    plans = [e.message for e in runtime.store().timeline(incident.id) if e.kind == "plan"]
    assert any("#alerts-critical" in m for m in plans) and any("rollback" in m for m in plans)
    assert runtime.store().get_incident(incident.id).is_open
