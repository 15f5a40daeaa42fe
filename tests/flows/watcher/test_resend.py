"""A message or page in flight when its run is killed: the run that takes over sends it exactly once.

Generation 1 is a real flow run in its own process; the stand-in holds its Slack post or PagerDuty event
(sandbox/holds.py), so `kill -9` lands between the action's claim and its answer, deterministically. Its
flow run is then set Crashed (what the runner or Prefect's zombie automation does: see test_takeover.py
for those) and generation 2, a flow run in this process, sends the same thing through the same code.
Then the sweeper's side: an escalation step a dead run left half-fired.

Cheap by design: the real store (SQLite), the real Slack and PagerDuty stand-ins, the session's Prefect
server; no runner, no Prefect services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from flows.comms import Comms
from flows.record import Record
from intake.sweep import Sweeper, SweepSettings
from runbook.models import (
    ActionStatus,
    Incident,
    IncidentRef,
    action_key,
    utc_now,
)
from runbook.store import Deadline
from sandbox.holds import Hold
from sandbox.pagerduty import PagerDutyStandIn
from sandbox.slack import SlackStandIn
from sandbox.testing import wait_for
from tasks import runtime
from tasks.slack import send_message, tag

from .conftest import open_p1

pytestmark = pytest.mark.usefixtures("prefect_api")

ROOT = Path(__file__).resolve().parents[3]
TEXT = "📋 Assessment: 500 on /health since the deploy of revision 3"
SUMMARY = "[P1] emotionscare down"

GENERATION_ONE = f"""
import sys
from prefect import flow
from flows.comms import Comms
from flows.record import Record
from runbook.models import IncidentRef

@flow(name="test-generation-one")
def generation_one(incident_id: str, what: str) -> None:
    comms = Comms(Record.open("respond", IncidentRef(incident_id=incident_id)))
    if what == "slack":
        comms.post("assessment", {TEXT!r})
    else:
        comms.page("trigger", "trigger", summary={SUMMARY!r})

generation_one(sys.argv[1], sys.argv[2])
"""


def _incident(name: str) -> Incident:
    return open_p1(f"resend:{name}")


@flow(name="test-open-thread")
def open_thread(incident_id: str) -> str:
    thread = Comms(Record.open("respond", IncidentRef(incident_id=incident_id))).open_thread("🔴 [P1] down")
    assert thread is not None
    return thread[1]


@flow(name="test-generation-two")
def generation_two(incident_id: str, what: str) -> bool:
    """The run that took over: sends what generation 1 was sending, through the same code."""
    comms = Comms(Record.open("respond", IncidentRef(incident_id=incident_id)))
    if what == "slack":
        return comms.post("assessment", TEXT) is not None
    return comms.page("trigger", "trigger", summary=SUMMARY) is not None


@flow(name="test-dead-run")
def dead_run() -> None:
    """Never run: a flow run of it is created and set Crashed (a run that died)."""


def _crash(run_id: str) -> None:
    """What the runner (or Prefect's zombie automation) does to a run whose process died."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Crashed(message="killed (test)"), force=True)  # type: ignore[arg-type]


def _crashed_run() -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(dead_run)
    _crash(str(run.id))
    return str(run.id)


def _claim(incident_id: str, action: str) -> Any:
    """The incident's one `slack` claim of the assessment (or its `pagerduty` trigger)."""
    found = [
        a
        for a in runtime.store().list_actions(incident_id)
        if a.action == action and a.target.endswith((":assessment", ":trigger"))
    ]
    return found[0] if found else None


LEAD_KEY = "escalate-P1-team-lead@300s"
LEAD_TEXT = "🚨 @team-lead: escalated to you"


def _plan_lead_step(incident_id: str) -> None:
    """The lead's escalation step, due a minute ago: a post in the thread and a page."""
    runtime.store().plan_deadlines(
        incident_id,
        [
            Deadline(
                incident_id=incident_id,
                key="P1:team-lead@300s",
                severity="P1",
                due_at=utc_now() - timedelta(seconds=60),
                unacknowledged_only=True,
                notices=[
                    {"kind": "post", "key": LEAD_KEY, "text": LEAD_TEXT},
                    {"kind": "page", "key": LEAD_KEY, "summary": "[P1] escalated", "details": {}},
                ],
            )
        ],
    )


def _run_and_kill(script_text: str, args: list[str], env: dict[str, str], hold: Hold, tmp: Path) -> None:
    """`script_text` in its own process, killed (-9) once the stand-in holds its call."""
    script = tmp / "killed.py"
    script.write_text(script_text)
    with open(tmp / "killed.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            env=env,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: hold.reached.is_set() or proc.poll() is not None, timeout_s=120, interval_s=0.05)
        assert hold.reached.is_set(), (tmp / "killed.log").read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # between the claim and its answer
        proc.wait(timeout=30)


def _kill_generation_one(incident_id: str, what: str, hold: Hold, api: str, tmp: Path) -> str:
    """Generation 1 in its own process, killed while its call is held; returns its (now Crashed) run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"PREFECT_API_URL": api, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    _run_and_kill(GENERATION_ONE, [incident_id, what], env, hold, tmp)
    claim = _claim(incident_id, "slack" if what == "slack" else "pagerduty")
    assert claim is not None and claim.status == ActionStatus.CLAIMED and claim.run_id, claim
    _crash(claim.run_id)
    hold.release()  # the stand-in's handler thread may end now: its caller is gone
    return str(claim.run_id)


def test_slack_post_in_flight_at_the_kill_is_not_posted_twice(
    stand_ins: tuple[SlackStandIn, PagerDutyStandIn], prefect_api: str, tmp_path: Path
) -> None:
    """Killed after Slack had the post (its answer held): the next run finds it by its metadata."""
    slack, _ = stand_ins
    incident = _incident("slack-landed")
    ts = open_thread(incident.id)
    hold = slack.hold_next("chat.postMessage", landed=True)

    dead = _kill_generation_one(incident.id, "slack", hold, prefect_api, tmp_path)
    assert generation_two(incident.id, "slack")

    texts = [m["text"] for m in slack.thread("incidents", ts)]
    assert texts.count(TEXT) == 1, texts
    claim = _claim(incident.id, "slack")
    assert claim.status == ActionStatus.SUCCEEDED and claim.run_id != dead, claim
    assert "found done after run" in str(claim.detail)
    notes = [e.message for e in runtime.store().timeline(incident.id) if e.kind == "takeover"]
    assert any("it had happened; not done again" in n for n in notes), notes
    # the message carries its claim, for the next run that has to look
    posted = next(m for m in slack.thread("incidents", ts) if m["text"] == TEXT)
    assert posted["metadata"] == tag(claim.key)


def test_slack_post_claimed_by_a_dead_run_and_never_sent_is_sent_once(
    stand_ins: tuple[SlackStandIn, PagerDutyStandIn],
) -> None:
    """Killed before the post left (no kill needed to show it: a claim by a Crashed run, no message)."""
    slack, _ = stand_ins
    incident = _incident("slack-lost")
    ts = open_thread(incident.id)
    channel = slack.channel_id("incidents")
    runtime.store().claim_action(incident.id, "slack", f"{channel}:assessment", run_id=_crashed_run())

    assert generation_two(incident.id, "slack")
    assert generation_two(incident.id, "slack") is False  # and a third run: refused, finished

    texts = [m["text"] for m in slack.thread("incidents", ts)]
    assert texts.count(TEXT) == 1, texts
    assert _claim(incident.id, "slack").status == ActionStatus.SUCCEEDED
    notes = [e.message for e in runtime.store().timeline(incident.id) if e.kind == "takeover"]
    assert any("it had not happened; doing it now" in n for n in notes), notes


def test_pagerduty_trigger_in_flight_at_the_kill_is_sent_again_on_its_dedup_key(
    stand_ins: tuple[SlackStandIn, PagerDutyStandIn], prefect_api: str, tmp_path: Path
) -> None:
    _, pagerduty = stand_ins
    incident = _incident("pagerduty")
    hold = pagerduty.hold_next(landed=False)

    _kill_generation_one(incident.id, "pagerduty", hold, prefect_api, tmp_path)
    assert not pagerduty.alerts(), "the held trigger was applied"
    assert generation_two(incident.id, "pagerduty")

    alerts = pagerduty.alerts()
    assert len(alerts) == 1 and alerts[0].dedup_key == incident.id and alerts[0].trigger_count == 1, alerts
    assert _claim(incident.id, "pagerduty").status == ActionStatus.SUCCEEDED


def test_a_live_holder_keeps_its_claim(stand_ins: tuple[SlackStandIn, PagerDutyStandIn]) -> None:
    """Only a dead run's claim is taken over: one whose run is still going is refused, as before."""
    from prefect.client.orchestration import get_client

    slack, _ = stand_ins
    incident = _incident("live")
    ts = open_thread(incident.id)
    with get_client(sync_client=True) as client:
        live = str(client.create_flow_run(dead_run).id)  # Scheduled: not final, so alive
    channel = slack.channel_id("incidents")
    runtime.store().claim_action(incident.id, "slack", f"{channel}:assessment", run_id=live)

    assert not generation_two(incident.id, "slack")

    assert TEXT not in [m["text"] for m in slack.thread("incidents", ts)]
    assert _claim(incident.id, "slack").status == ActionStatus.CLAIMED


def test_sweeper_finishes_an_escalation_a_dead_run_left_half_fired(
    stand_ins: tuple[SlackStandIn, PagerDutyStandIn], prefect_api: str
) -> None:
    """The watch of a killed `respond` claimed the lead's step, posted (answer lost) and never paged:
    the sweeper takes the step over, finds the post in the thread, pages once."""
    slack, pagerduty = stand_ins
    incident = _incident("sweep")
    ts = open_thread(incident.id)
    store = runtime.store()
    dead = _crashed_run()
    channel = slack.channel_id("incidents")
    key, text = LEAD_KEY, LEAD_TEXT
    _plan_lead_step(incident.id)
    store.update_incident(incident.id, pagerduty_dedup_key=incident.id)
    store.claim_action(incident.id, "escalate", "P1:team-lead@300s", run_id=dead)
    slack_target = f"{channel}:{key}"
    store.claim_action(incident.id, "slack", slack_target, run_id=dead)
    send_message(channel, text, ts, metadata=tag(action_key(incident.id, "slack", slack_target)))
    store.claim_action(incident.id, "pagerduty", f"{incident.id}:{key}", run_id=dead)

    swept = Sweeper(store, prefect_api, SweepSettings(_env_file=None, grace_s=0)).run_once()  # type: ignore[call-arg]

    assert swept.escalated == [(incident.id, "P1:team-lead@300s")]
    assert [m["text"] for m in slack.thread("incidents", ts)].count(text) == 1
    assert len(pagerduty.alerts()) == 1
    statuses = {
        a.action: a.status for a in store.list_actions(incident.id) if a.action != "slack" or key in a.target
    }
    assert statuses == {
        "escalate": ActionStatus.SUCCEEDED,
        "slack": ActionStatus.SUCCEEDED,
        "pagerduty": ActionStatus.SUCCEEDED,
    }, statuses


def test_a_subflow_left_running_under_a_crashed_parent_counts_as_ended(prefect_api: str) -> None:
    """A killed `respond`'s runbook subflow stays Running in Prefect: its claims are orphans too."""
    from prefect import task
    from prefect.client.orchestration import get_client

    from tasks.orphans import run_ended

    @task
    def subflow_call() -> None:
        """Stands for the task run Prefect makes in the parent for a subflow call."""

    parent = _crashed_run()
    with get_client(sync_client=True) as client:
        call = client.create_task_run(subflow_call, flow_run_id=parent, dynamic_key="0")  # type: ignore[arg-type]
        child = str(client.create_flow_run(dead_run, parent_task_run_id=call.id).id)
        lone = str(client.create_flow_run(dead_run).id)

    assert run_ended(child) == f"parent run {parent} Crashed"
    assert run_ended(lone) is None  # not final, no parent: alive
    assert run_ended("not-a-uuid") == "run not-a-uuid gone"


@flow(name="test-earlier-result")
def earlier(incident_id: str, took_over: bool) -> Any:
    from flows.response.verify import earlier_result

    rec = Record.open("respond", IncidentRef(incident_id=incident_id))
    if took_over:
        rec.note("takeover", "taking over the response (generation 2): run x ended Crashed")
    return earlier_result(rec)


def test_a_takeover_after_the_fix_goes_on_verifying_without_running_the_runbook_again(
    stand_ins: tuple[SlackStandIn, PagerDutyStandIn],
) -> None:
    from runbook.models import RunbookOutcome

    incident = _incident("verifying")

    @flow(name="test-service-down-finished")
    def finished() -> None:
        """The earlier generation's runbook subflow: its outcome, as Record.finish stores it."""
        rec = Record.open("service-down", IncidentRef(incident_id=incident.id))
        rec.finish(RunbookOutcome.ROLLED_BACK, "rolled back to revision 1; health verified")

    assert earlier(incident.id, took_over=True) is None  # nothing finished yet
    finished()

    result = earlier(incident.id, took_over=True)
    assert result is not None
    assert (result.runbook, result.outcome) == ("service-down", RunbookOutcome.ROLLED_BACK)
    assert result.summary == "rolled back to revision 1; health verified"
    assert earlier(incident.id, took_over=False) is None  # a first generation runs its runbook


def test_a_top_level_message_is_looked_for_by_channel_id(
    stand_ins: tuple[SlackStandIn, PagerDutyStandIn],
) -> None:
    """`conversations.*` take channel IDs only (real Slack): a `#name` is looked up first."""
    from tasks.slack import find_tagged

    slack, _ = stand_ins
    sent = send_message("#alerts-critical", "👀 Acknowledged", metadata=tag("i:slack:#alerts-critical:ack"))

    found = find_tagged("#alerts-critical", "i:slack:#alerts-critical:ack", since=0)
    assert found is not None and found.ts == sent.ts
    assert find_tagged("#alerts-critical", "i:slack:#alerts-critical:other") is None
    asked = [r.body for r in slack.requests if r.path.endswith("conversations.history")]
    assert {a["channel"] for a in asked} == {slack.channel_id("alerts-critical")}


SWEEPER_ONE = """
from intake.sweep import Sweeper, SweepSettings
from tasks import runtime

Sweeper(runtime.store(), None, SweepSettings(_env_file=None, grace_s=0)).run_once()
"""


def test_an_escalation_a_killed_sweeper_was_sending_is_finished_once_by_the_next(
    stand_ins: tuple[SlackStandIn, PagerDutyStandIn], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Intake's sweeper (no run id on its claims) killed after Slack had its escalation post, the answer
    held: while the claims are young the next sweeper leaves them (a live sender may still be at it);
    once older than any send takes, it takes them over, finds the post, and pages once."""
    slack, pagerduty = stand_ins
    incident = _incident("sweeper-killed")
    ts = open_thread(incident.id)
    store = runtime.store()
    _plan_lead_step(incident.id)
    hold = slack.hold_next("chat.postMessage", landed=True)
    _run_and_kill(
        SWEEPER_ONE, [], {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}, hold, tmp_path
    )
    hold.release()
    held = {a.action: a for a in store.list_actions(incident.id) if a.action in ("escalate", "slack")}
    assert {a: (r.status, r.run_id) for a, r in held.items()} == {
        "escalate": (ActionStatus.CLAIMED, None),
        "slack": (ActionStatus.CLAIMED, None),
    }, held

    # The next sweeper, with 2 s notifier timeouts and no backoff: its claims go stale after 12 s (the
    # first look below must come before that, a few seconds after the kill even on a loaded machine).
    monkeypatch.setenv("RUNBOOK_SLACK_TIMEOUT_S", "2")
    monkeypatch.setenv("RUNBOOK_PAGERDUTY_TIMEOUT_S", "2")
    runtime.reset()
    from tasks.orphans import unowned_stale_s

    assert unowned_stale_s() == 12.0
    sweeper = Sweeper(runtime.store(), None, SweepSettings(_env_file=None, grace_s=0))  # type: ignore[call-arg]
    assert sweeper.run_once().escalated == []  # young: perhaps a live sweeper still sending
    assert pagerduty.alerts() == []

    fired: list[Any] = []

    def swept() -> bool:
        fired.extend(sweeper.run_once().escalated)
        return bool(fired)

    wait_for(swept, timeout_s=60, interval_s=0.5)

    assert fired == [(incident.id, "P1:team-lead@300s")]
    assert sweeper.run_once().escalated == []  # once
    assert [m["text"] for m in slack.thread("incidents", ts)].count(LEAD_TEXT) == 1
    assert len(pagerduty.alerts()) == 1
    statuses = {
        a.action: a.status
        for a in runtime.store().list_actions(incident.id)
        if a.action != "slack" or "escalate" in a.target
    }
    assert statuses == {
        "escalate": ActionStatus.SUCCEEDED,
        "slack": ActionStatus.SUCCEEDED,
        "pagerduty": ActionStatus.SUCCEEDED,
    }, statuses
    notes = [e.message for e in runtime.store().timeline(incident.id) if e.kind == "takeover"]
    assert any("found sent by the dead run: not sent again" in n for n in notes), notes
