"""Related incidents (issue 13 item 1): two different alerts about one bad deploy → one thread, one
rollback, both incidents resolved after verification, against the sandbox world and the Prefect server."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from flows.respond import respond
from flows.response.related import RELATED_KIND, primary_for
from runbook.models import IncidentStatus, RunbookOutcome, RunbookResult
from runbook.severity import Severity
from sandbox.testing import wait_for
from sandbox.world import GOOD_IMAGE
from tasks import runtime

from .world import FAST_RUNBOOK, open_incident, ref

OPTIONS: dict[str, Any] = dict(
    status_update_interval_s=5.0,
    escalation_poll_s=0.05,
    stability_window_s=6.0,
    runbook_options=FAST_RUNBOOK,
)


def _respond_in_thread(incident_ref: Any, results: dict[str, RunbookResult], key: str) -> threading.Thread:
    def run() -> None:
        results[key] = respond(incident=incident_ref, **OPTIONS)

    runner = threading.Thread(target=run, name=f"respond-{key}")
    runner.start()
    return runner


def _rollbacks(*incident_ids: str) -> int:
    store = runtime.store()
    return sum(
        1
        for i in incident_ids
        for a in store.list_actions(i)
        if a.action == "rollback" and a.status == "succeeded"
    )


@pytest.mark.parametrize("second_after_s", [0.05, 20.0], ids=["50ms-apart", "20s-later"])
def test_two_alerts_about_one_bad_deploy_share_one_thread_and_one_rollback(
    world, second_after_s: float
) -> None:
    world.inject("bad-deploy")
    first = open_incident(Severity.P1, name="ServiceDown", title="emotionscare is down")
    results: dict[str, RunbookResult] = {}
    runners = [_respond_in_thread(ref(first), results, "first")]
    try:
        if second_after_s > 1:  # the second alert arrives while the first response is already acting
            assert wait_for(lambda: world.pagerduty.requests, 30)
        second = open_incident(
            Severity.P1,
            name="HighErrorRate",
            title="error rate above 5%",
            starts_at=first.started_at + timedelta(seconds=second_after_s),
        )
        runners.append(_respond_in_thread(ref(second), results, "second"))
    finally:
        for runner in runners:
            runner.join(timeout=120)
    assert not any(r.is_alive() for r in runners), "a respond run is still going (paused?)"

    assert results["first"].outcome == RunbookOutcome.ROLLED_BACK, results["first"].summary
    assert results["second"].outcome == RunbookOutcome.RECOVERED, results["second"].summary
    assert results["second"].summary.startswith(f"resolved with incident {first.id}")
    assert world.live_image() == GOOD_IMAGE
    assert _rollbacks(first.id, second.id) == 1
    store = runtime.store()
    for incident in (first, second):
        assert store.get_incident(incident.id).status == IncidentStatus.RESOLVED
    # One thread, one acknowledgement, one page; the related alert is said in the first's thread.
    assert len(world.slack.messages("incidents")) == 1
    assert len(world.slack.messages("alerts-critical")) == 1
    assert [r.json()["event_action"] for r in world.pagerduty.requests] == ["trigger", "resolve"]
    thread_ts = store.get_incident(first.id).slack_thread_ts
    replies = [m for m in world.slack.all_messages("incidents") if m.get("thread_ts") == thread_ts]
    assert any(f"incident {second.id}" in m["text"] and "Related alert" in m["text"] for m in replies)
    # The link, and why, in both timelines.
    linked = [e for e in store.get_incident(second.id).timeline if e.kind == RELATED_KIND]
    assert linked and linked[0].evidence == {"primary": first.id, "why": linked[0].evidence["why"]}
    assert "same service (emotionscare)" in linked[0].message
    assert any(
        e.kind == RELATED_KIND and e.evidence and e.evidence.get("linked") == second.id
        for e in store.get_incident(first.id).timeline
    )


def test_only_an_earlier_incident_of_the_same_or_a_higher_level_leads(world) -> None:
    p2 = open_incident(Severity.P2, name="Slow", title="slow pages")
    p1 = open_incident(Severity.P1, name="Down", title="down", starts_at=p2.started_at + timedelta(seconds=5))
    p1_later = open_incident(
        Severity.P1, name="Errors", title="errors", starts_at=p2.started_at + timedelta(seconds=9)
    )
    assert primary_for(p2) is None  # nothing earlier
    assert primary_for(p1) is None  # the earlier one is of a lower level
    found = primary_for(p1_later)
    assert found is not None and found.id == p1.id  # earliest of the same or a higher level
    assert primary_for(p1_later, window=timedelta(seconds=2)) is None  # outside the window
    assert primary_for(p1_later, window=timedelta(0)) is None  # linking switched off
    # Resolved after the later one started: still its primary (only verify and resolve with it);
    # resolved before it started: a new problem, not related.
    store = runtime.store()
    store.set_status(p1.id, IncidentStatus.RESOLVED, p1_later.started_at + timedelta(seconds=1), "test")
    found = primary_for(p1_later)
    assert found is not None and found.id == p1.id
    store.set_status(p1_later.id, IncidentStatus.RESOLVED, p2.started_at + timedelta(seconds=20), "test")
    p1_after = open_incident(
        Severity.P1, name="Again", title="again", starts_at=p2.started_at + timedelta(seconds=30)
    )
    assert primary_for(p1_after) is None
