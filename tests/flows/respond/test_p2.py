"""The P2 diagnoses ("Common P2 Issues") each reach their documented conclusion on the sandbox fault built
for them, and `respond` runs the P2 timeline (and raises a P2 to P1 when the service is down)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID, uuid4

import httpx
from prefect.flow_runs import resume_flow_run

from flows.diagnoses import conclusion_of
from flows.error_rate_spike import error_rate_spike
from flows.feature_broken import feature_broken
from flows.performance_degradation import performance_degradation
from flows.respond import respond
from runbook.models import IncidentRef, IncidentStatus, RunbookOutcome, TimelineEntry
from runbook.severity import Severity
from sandbox.testing import wait_for
from sandbox.world import GOOD_IMAGE
from tasks import runtime

from .support import flow_run_state
from .world import FAST_RUNBOOK, open_incident, ref, text_of


def conclusion(result) -> dict:
    item = next(e for e in result.evidence if e.kind == "conclusion")
    assert item.data is not None
    return item.data


def test_error_rate_spike_finds_one_pattern_across_endpoints_not_infrastructure_no_deploy(world) -> None:
    world.inject("error-rate", "8")
    world.traffic.burst(200)

    result = error_rate_spike(incident=IncidentRef(summary="error rate 8%"), window_s=60)

    assert conclusion_of(result) == "code_defect"
    data = conclusion(result)
    assert 5 < data["error_rate_pct"] <= 10
    assert len(data["endpoints"]) > 1  # the error-rate fault touches every feature endpoint
    assert "TypeError" in data["pattern"] and "getPreferences" in data["pattern"]
    assert "shared code" in data["reason"] and "no deploy in the last 15 min" in data["reason"]
    assert result.outcome == RunbookOutcome.ESCALATED  # no quick fix an automaton can make: hotfix
    assert [o[:2] for o in data["options"]] == ["a)", "b)", "c)", "d)"]
    assert world.revision() == 2  # nothing rolled back


def test_error_rate_spike_after_a_deploy_rolls_back(world) -> None:
    world.inject("bad-deploy")
    world.traffic.burst(40)

    result = error_rate_spike(
        incident=IncidentRef(summary="error rate"), window_s=60, ready_deadline_s=20, poll_interval_s=0.05
    )

    assert conclusion_of(result) == "deploy_regression"
    assert result.outcome == RunbookOutcome.ROLLED_BACK
    assert world.live_image() == GOOD_IMAGE


@contextmanager
def readers(world, count: int) -> Iterator[None]:
    """`count` users reading their journal over and over until the block ends."""
    stop = threading.Event()

    def read(offset_s: float) -> None:
        if stop.wait(offset_s):  # staggered, so some read is always well under way
            return
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                http.get(world.service.url + "/api/journal")

    threads = [threading.Thread(target=read, args=(i * 1.1,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


def test_performance_degradation_is_consistent_and_points_at_the_slow_query(world) -> None:
    world.inject("slow-query", ms=3200)
    with readers(world, 3):
        # three reads have completed, each 3.2 s in PostgreSQL
        assert wait_for(
            lambda: httpx.get(world.service.url + "/metrics?window_s=60").json()["requests"] >= 3, 20
        )
        result = performance_degradation(
            incident=IncidentRef(summary="journal slow"), samples=3, sample_interval_s=0.8, window_s=60
        )

    assert conclusion_of(result) == "database_query"
    data = conclusion(result)
    assert data["pattern"] == "consistent" and data["samples_over"] == 3
    assert "GET /api/journal" in data["slow_endpoints"]
    assert data["slow_endpoints"]["GET /api/journal"] >= 3000
    assert any("journal_feed" in q or "pg_sleep" in q for q in data["slow_queries"]), data
    assert "Optimize slow query" in data["options"]
    assert result.outcome == RunbookOutcome.ESCALATED


def test_feature_broken_isolates_journal_creation_and_the_constraint(world) -> None:
    world.inject("journal-broken")
    world.traffic.burst(24)  # reads and writes of the journal among the feature calls

    result = feature_broken(incident=IncidentRef(summary="users can't create journal entries"), window_s=60)

    assert conclusion_of(result) == "database_table"
    data = conclusion(result)
    assert data["endpoint"] == "POST /api/journal" and data["operation"] == "create"
    assert data["reads"] == "reads work"
    assert data["users"].startswith("all users")
    assert "sentiment_score" in " ".join(data["findings"]) and "NOT VALID" in " ".join(data["findings"])
    assert "migration" in data["reason"]
    assert result.outcome == RunbookOutcome.ESCALATED


def test_p2_respond_assesses_decides_and_escalates_to_the_lead_without_paging(world) -> None:
    world.inject("error-rate", "8")
    world.traffic.burst(200)
    incident = open_incident(Severity.P2, name="HighErrorRate", title="High Error Rate (8%)")

    result = respond(
        incident=ref(incident),
        status_update_interval_s=1.0,
        escalation_poll_s=0.05,
        handover_timeout_s=1,
        handover_poll_s=1,
        runbook_options={"window_s": 60.0},
    )

    assert result.outcome == RunbookOutcome.ESCALATED
    texts = [m["text"] for m in world.slack.all_messages("incidents")]
    assert any(t.startswith("P2 assessment and decision") and "error-rate-spike" in t for t in texts)
    assert any(t.startswith("Diagnosis (error-rate-spike): escalated") for t in texts)
    assert any(t.startswith("🚨 @team-lead: escalated to you") for t in texts)
    assert world.pagerduty.requests == []  # P2: escalation to lead, no PagerDuty
    assert runtime.store().get_incident(incident.id).is_open


def test_a_p2_that_is_really_a_p1_is_reclassified_paged_and_rolled_back(world) -> None:
    world.inject("bad-deploy")
    incident = open_incident(Severity.P2, name="JournalErrors", title="Journal errors")

    result = respond(
        incident=ref(incident),
        status_update_interval_s=1.0,
        escalation_poll_s=0.05,
        stability_window_s=0.3,
        runbook_options=FAST_RUNBOOK,
    )

    stored = runtime.store().get_incident(incident.id)
    assert stored.severity == Severity.P1 and "reclassified" in stored.severity_rule
    assert stored.status == IncidentStatus.RESOLVED
    assert result.outcome == RunbookOutcome.ROLLED_BACK
    replies = [text_of(r) for r in world.slack.requests if r.path == "/api/chat.postMessage"]
    assert any(t.startswith("⬆️ Reclassified P2 → P1") for t in replies)
    assert [r.json()["event_action"] for r in world.pagerduty.requests] == ["trigger", "resolve"]


def test_a_level_raised_while_respond_runs_switches_it_to_the_p1_timeline(world) -> None:
    """A worse alert joins (intake raises the incident P2 → P1 and records why) while respond waits for a
    person: its escalation re-reads the level, says so in the thread, pages (P1) and keeps P1's deadlines."""
    world.inject("error-rate", "8")
    world.traffic.burst(200)
    incident = open_incident(Severity.P2, name="HighErrorRate", title="High Error Rate (8%)")
    done: dict = {}
    runner = threading.Thread(
        target=lambda: done.update(
            result=respond(
                incident=ref(incident),
                status_update_interval_s=0.5,
                escalation_poll_s=0.05,
                stability_window_s=0.3,
                handover_timeout_s=60,
                handover_poll_s=1,
                runbook_options={"window_s": 60.0},
            )
        )
    )
    runner.start()
    store = runtime.store()
    try:
        owner = f"{incident.id}:respond:lifecycle-1"
        wait_for(lambda: store.get_action(owner), 20)
        run_id = str(store.get_action(owner).run_id)  # type: ignore[union-attr]
        wait_for(lambda: flow_run_state(run_id) == "PAUSED", 60)  # handed over: the P2 lead, no page
        assert world.pagerduty.requests == []

        # Intake writes the raise and its `severity_raised` entry in one transaction; here the entry goes
        # first so respond, polling every 50 ms, can never see the new level without its reason.
        store.append_timeline(
            incident.id,
            TimelineEntry(
                actor="intake",
                kind="severity_raised",
                message="P2 → P1: alert ServiceUnavailable joined (service unavailable)",
            ),
        )
        store.update_incident(incident.id, severity=Severity.P1, severity_rule="p1.service_unavailable")

        raised = wait_for(
            lambda: [t for t in _incident_texts(world) if t.startswith("⬆️ Reclassified P2 → P1")], 20
        )
        assert len(raised) == 1
        assert "alert ServiceUnavailable joined" in raised[0]
        assert "P1 - Critical timeline" in raised[0] and "on-call now (paged)" in raised[0]
        wait_for(lambda: [r.json()["event_action"] for r in world.pagerduty.requests] == ["trigger"], 20)
        wait_for(lambda: any(t.startswith("🔴 [P1 - CRITICAL]") for t in _incident_texts(world)), 20)
        timeline = store.get_incident(incident.id).timeline
        assert any(e.kind == "level" and "the P1 timeline applies now" in e.message for e in timeline)
        escalated = [a.target for a in store.list_actions(incident.id) if a.action == "escalate"]
        assert "P1:on-call@0s" in escalated

        world.clear()
        resume_flow_run(
            UUID(run_id),
            run_input={"acknowledged_by": "alice", "resolved": True, "root_cause": "Error spike",
                       "resolution": "Fixed by hand"},
        )  # fmt: skip
    finally:
        runner.join(timeout=90)

    assert done["result"].outcome == RunbookOutcome.RECOVERED
    assert [r.json()["event_action"] for r in world.pagerduty.requests][-1] == "resolve"


def _incident_texts(world) -> list[str]:
    return [m["text"] for m in world.slack.all_messages("incidents")]


def test_a_p2_taken_over_after_its_fix_goes_on_verifying_without_diagnosing_again(world) -> None:
    """Generation 1 (its run gone from Prefect) ran error-rate-spike, which rolled back, and died while
    verifying: generation 2 takes over, does not run the diagnosis (or its rollback) again, verifies and
    resolves."""
    incident = open_incident(Severity.P2, name="HighErrorRate", title="High Error Rate (8%)")
    store = runtime.store()
    store.claim_action(
        incident.id, "respond", "lifecycle-1", run_id=str(uuid4()), detail="manages the response"
    )
    fixed = "rolled back to revision 1 (registry.local/emotionscare:v1.0.0)"
    store.append_timeline(
        incident.id,
        TimelineEntry(
            actor="runbook:error-rate-spike",
            kind="outcome",
            message=f"rolled_back: {fixed}",
            evidence={"outcome": "rolled_back", "summary": fixed},
        ),
    )

    result = respond(
        incident=ref(incident),
        status_update_interval_s=1.0,
        escalation_poll_s=0.05,
        stability_window_s=0.3,
        runbook_options=FAST_RUNBOOK,
    )

    assert result.outcome == RunbookOutcome.ROLLED_BACK, result.summary
    assert store.get_incident(incident.id).status == IncidentStatus.RESOLVED
    timeline = store.timeline(incident.id)
    assert any(e.kind == "takeover" and "generation 2" in e.message for e in timeline)
    assert any("error-rate-spike already ended rolled_back" in e.message for e in timeline)
    diagnoses = [e for e in timeline if e.kind == "start" and e.actor != "runbook:respond"]
    assert not diagnoses, diagnoses  # not run again
    assert world.revision() == 2  # and nothing rolled back by this generation
