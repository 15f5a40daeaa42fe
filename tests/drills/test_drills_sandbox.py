"""Each of the four drills end to end against the sandbox world: inject, detect, respond, recover, clean up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from flows import drills
from flows.drills import (
    drill_database_failure,
    drill_external_api_failure,
    drill_high_error_rate,
    drill_performance_degradation,
)
from runbook.drill_history import open_history
from runbook.drills import DrillResult, DrillStatus, Step, scenario
from runbook.models import IncidentStatus
from runbook.postmortem import render_drill_report
from runbook.store import open_store
from sandbox.control import ControlServer
from sandbox.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]
FAST = {"poll_interval_s": 0.05, "detect_deadline_s": 20.0, "recover_deadline_s": 60.0}


def check_recovered_and_clean(result: DrillResult, world: Any) -> None:
    report = render_drill_report(result, scenario(result.scenario))
    assert result.status == DrillStatus.PASSED, report
    assert result.fault_cleared and world.active_faults() == [], report
    for step in (Step.DETECT, Step.ACKNOWLEDGE, Step.MITIGATE, Step.RECOVER):
        measured = result.step(step)
        assert measured is not None and measured.at is not None and measured.elapsed_s is not None, report
        assert measured.passed, report
    assert result.mttr_s is not None and result.mttr_s > 0
    assert "| detect |" in report and "✅ PASSED" in report
    # the world is healthy again
    assert world.live_image().endswith("v1.1.0")
    # the drill's incident is in the store, closed, with the drill's story in its timeline
    with open_store(world.store_url) as store:
        incident = store.get_incident(result.incident_id)
        assert incident.status == IncidentStatus.RESOLVED
        kinds = [e.kind for e in incident.timeline]
        assert kinds.index("inject") < kinds.index("detect") < kinds.index("outcome") < kinds.index("clear")
    with open_history(world.store_url) as history:
        (row,) = history.list(scenario=result.scenario)
    assert row.status == "passed" and row.mttr_s == result.mttr_s
    # the report went to #incidents
    posted = [m["text"] for m in world.slack.messages("incidents")]
    assert any(f"Drill {scenario(result.scenario).label}*: passed" in text for text in posted), posted


def test_database_failure_drill(prefect_api: str, world_target: Any) -> None:
    result = drill_database_failure(
        **FAST, runbook_parameters={"verify_deadline_s": 10, "poll_interval_s": 0.05}
    )
    check_recovered_and_clean(result, world_target)
    assert result.runbook_outcome == "recovered"
    assert result.step(Step.MITIGATE).note == "reset-db-pool succeeded"


def test_high_error_rate_drill(prefect_api: str, world_target: Any) -> None:
    revision = world_target.revision()
    result = drill_high_error_rate(**FAST, runbook_parameters={"settle_s": 0, "poll_interval_s": 0.05})
    check_recovered_and_clean(result, world_target)
    assert result.runbook_outcome == "rolled_back"
    assert result.step(Step.MITIGATE).note == "rollback succeeded"
    assert world_target.revision() == revision + 2  # the buggy deploy, then the rollback: nothing more


def test_performance_degradation_drill(prefect_api: str, world_target: Any) -> None:
    result = drill_performance_degradation(
        **FAST, runbook_parameters={"samples": 1, "sample_interval_s": 0, "window_s": 60}
    )
    check_recovered_and_clean(result, world_target)
    assert result.runbook_outcome == "escalated"  # to people, to optimise the query: expected
    assert "diagnosed database_query" in result.step(Step.MITIGATE).note


def test_external_api_failure_drill(prefect_api: str, world_target: Any) -> None:
    result = drill_external_api_failure(
        **FAST, outage_s=1.0, runbook_parameters={"poll_interval_s": 0.05, "recovery_deadline_s": 30}
    )
    check_recovered_and_clean(result, world_target)
    assert result.runbook_outcome == "recovered"
    assert result.step(Step.MITIGATE).note == "disable-feature succeeded"
    assert result.step(Step.RECOVER).origin == "cause lifted"
    assert world_target.live_env()["FEATURE_MUSIC_GENERATION_ENABLED"] == "true"


def test_a_drill_whose_runbook_fails_still_clears_its_fault_and_reports_fail(
    prefect_api: str, world_target: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    @flow(name="service-down")
    def broken_runbook(incident: Any = None, settle_s: float = 30.0) -> None:
        world_target.inject("error-rate", pct=50)  # it even makes things worse before it dies
        raise RuntimeError("kubectl: connection reset by peer")

    monkeypatch.setattr(drills, "runbook_flow", lambda name: broken_runbook)
    result = drill_high_error_rate(**FAST, runbook_parameters={"settle_s": 0})
    assert result.status == DrillStatus.FAILED
    assert result.runbook_error == "RuntimeError: kubectl: connection reset by peer"
    assert result.fault_cleared and world_target.active_faults() == []  # bad-deploy and error-rate gone
    assert world_target.live_image().endswith("v1.1.0")
    assert not result.step(Step.MITIGATE).passed and not result.step(Step.RECOVER).passed
    report = render_drill_report(result, scenario("high-error-rate"))
    assert "❌ FAILED" in report and "kubectl: connection reset by peer" in report
    assert "The runbook service-down failed (RuntimeError: kubectl: connection reset by peer)" in report
    with open_history(world_target.store_url) as history:
        assert history.list()[0].status == "failed"
    assert any("*: failed" in m["text"] for m in world_target.slack.messages("incidents"))


CANCELLED_DRILL = """
from flows.drills import drill_external_api_failure
drill_external_api_failure(outage_s=600, poll_interval_s=0.05, detect_deadline_s=20, recover_deadline_s=600,
                           post_to_slack=False, runbook_parameters={"poll_interval_s": 0.05})
"""


def test_a_cancelled_drill_still_clears_its_fault(prefect_api: str, sandbox_world: Any) -> None:
    """Cancelling a run delivers SIGTERM to its process (the runner does); Prefect raises it in the flow
    as TerminationSignal. The drill runs in its own process against the sandbox's control API."""
    control = ControlServer(sandbox_world).start()
    env = {
        **os.environ,
        **sandbox_world.settings_env(),
        "PREFECT_API_URL": prefect_api,
        "SANDBOX_CONTROL_URL": control.url,
    }
    flag = "FEATURE_MUSIC_GENERATION_ENABLED"
    proc = subprocess.Popen(
        [sys.executable, "-c", CANCELLED_DRILL],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # the drill is in the middle of its response: Hume blocked, the feature turned off, polling
        wait_for(lambda: sandbox_world.live_env().get(flag) == "false", timeout_s=60)
        assert sandbox_world.active_faults() != []
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        control.stop()
    assert "[clear] fault api-down api=hume cleared" in output, output[-3000:]
    assert sandbox_world.active_faults() == []
    assert sandbox_world.apis.mode("hume") == "up"
