"""The Prefect API failing in the middle of `respond` and of `service_down`: the run ends in a defined
state (escalated, or done when the API was only needed for the record), nothing hangs, the escalation is
in the incident's timeline and in Slack, and once the API answers again the run is Completed in Prefect.

What Prefect 3.9.1 does with its API gone mid-run (read in these tests): task runs report through
events (a background worker that logs its failures), so tasks go on; the calls that need the API are
the subflow's creation, artifacts, pauses and Variables. The client retries each of those
(`PREFECT_CLIENT_MAX_RETRIES`, 2 here: about 6 s) and then raises: `httpx.ConnectError` (refused) or
`PrefectHTTPStatusError` (503), which `flows.outages` classifies as the Prefect API → escalated. The
run's final state is written with the same retries, so it lands once the API is back within them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client
from prefect.settings import (
    PREFECT_API_REQUEST_TIMEOUT,
    PREFECT_API_URL,
    PREFECT_CLIENT_MAX_RETRIES,
    temporary_settings,
)
from respond.world import open_incident, ref

from flows.respond import respond
from flows.service_down import service_down
from runbook.models import RunbookOutcome
from runbook.severity import Severity
from sandbox.faults.gate import Gate
from sandbox.testing import wait_for
from tasks import runtime

from .support import DEADLINE_S, RESPOND_FAST, outage_entries


def in_background(fn: Callable[[], None]) -> Callable[[], None]:
    """Run `fn` in a thread; the returned call joins it and raises what it raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-outage", daemon=True)
    thread.start()

    def join() -> None:
        thread.join(timeout=DEADLINE_S)
        assert not thread.is_alive(), "the outage driver did not end"
        if errors:
            raise errors[0]

    return join


REQUEST_TIMEOUT_S = (
    2.0  # PREFECT_API_REQUEST_TIMEOUT here, with 1 retry; docs/safety.md says what to run with
)


def final_state_in_prefect(state: Any, api: str) -> str:
    """The run's final state type as the Prefect server holds it (asked directly, not through the gate)."""
    run_id = state.state_details.flow_run_id

    def read() -> str:
        with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            found = client.read_flow_run(UUID(str(run_id))).state
        return found.type.value if found is not None and found.is_final() else ""

    return wait_for(read, timeout_s=30, interval_s=0.2)


@pytest.mark.parametrize("mode", ["refuse", "5xx"])
def test_respond_prefect_api_down_mid_response_escalates(
    world, gated: Gate, prefect_api: str, mode: str
) -> None:
    world.inject("bad-deploy")
    revision = world.revision()
    incident = open_incident(Severity.P1, title="Homepage returns 500")

    def outage() -> None:  # once the thread is open, the API goes; back once the escalation is recorded
        wait_for(lambda: world.slack.messages("incidents"), timeout_s=DEADLINE_S)
        world.inject("prefect-api-down", mode=mode)
        wait_for(lambda: outage_entries(incident.id), timeout_s=DEADLINE_S)
        world.clear("prefect-api-down")

    join = in_background(outage)
    started = time.monotonic()
    state = respond(incident=ref(incident), **RESPOND_FAST, return_state=True)
    elapsed = time.monotonic() - started
    join()

    assert elapsed < DEADLINE_S
    assert state.is_completed(), state
    result = state.result()
    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert "the Prefect API" in result.summary
    # the runbook's subflow could not be created: nothing was changed, and people were told
    assert world.revision() == revision
    assert any("Prefect API" in e.message for e in outage_entries(incident.id))
    texts = [m["text"] for m in world.slack.all_messages("incidents")]
    assert any("respond stopped" in t and "Prefect API" in t for t in texts)
    assert "trigger" in [r.json()["event_action"] for r in world.pagerduty.requests]
    assert final_state_in_prefect(state, prefect_api) == "COMPLETED"


@pytest.mark.parametrize("mode", ["refuse", "5xx", "timeout"])
def test_service_down_prefect_api_down_while_the_rollout_runs_still_rolls_back(
    world, gated: Gate, prefect_api: str, mode: str
) -> None:
    world.inject("bad-deploy", ago_min=2)
    revision = world.revision()
    seen: list[str] = []

    def notes(kind: str) -> list[str]:
        return [
            e.message
            for i in runtime.store().list_incidents()
            for e in runtime.store().timeline(i.id)
            if e.kind == kind
        ]

    def outage() -> None:  # the rollback issued: the API is gone until the run has recorded its outcome
        wait_for(lambda: world.revision() > revision, timeout_s=DEADLINE_S, interval_s=0.005)
        world.inject("prefect-api-down", mode=mode)
        seen.extend(wait_for(lambda: [m for m in notes("verify") if "rolled out" in m], timeout_s=DEADLINE_S))
        wait_for(lambda: notes("outcome") or notes("outage"), timeout_s=DEADLINE_S)
        world.clear("prefect-api-down")  # within the client's first retry (2 s) of the artifact

    join = in_background(outage)
    started = time.monotonic()
    # "timeout": the API accepts and never answers; with a request timeout each call is bounded
    bounded = {PREFECT_API_REQUEST_TIMEOUT: REQUEST_TIMEOUT_S, PREFECT_CLIENT_MAX_RETRIES: 1}
    with temporary_settings(updates=bounded) if mode == "timeout" else contextlib.nullcontext():
        state = service_down(settle_s=0.0, poll_interval_s=0.05, ready_deadline_s=20.0, return_state=True)
    elapsed = time.monotonic() - started
    join()

    # Waiting for the rollout needs no API (task runs report through events): it went on, verified.
    assert elapsed < DEADLINE_S
    assert seen, "the rollout was watched to its end while the API was down"
    assert state.is_completed(), state
    result = state.result()
    assert result.outcome == RunbookOutcome.ROLLED_BACK, result.summary
    assert world.revision() == revision + 1  # one rollback
    assert final_state_in_prefect(state, prefect_api) == "COMPLETED"


HANG_BOUND_S = 45.0
"""An API that accepts and never answers costs each call (1 + 1 retry) x the request timeout plus the
client's backoff (about 2 s): ~6 s here. `respond` makes two such calls before it ends (the runbook
subflow it cannot create, then the escalation's artifact, unless the API is back by then): the bound
leaves room for both on a loaded machine; without a request timeout the client would wait 60 s a try."""


def test_respond_prefect_api_hanging_mid_response_escalates_within_a_bound(
    world, gated: Gate, prefect_api: str
) -> None:
    world.inject("bad-deploy")
    revision = world.revision()
    incident = open_incident(Severity.P1, title="Homepage returns 500")

    def outage() -> None:  # once the thread is open the API hangs; back once the escalation is recorded
        wait_for(lambda: world.slack.messages("incidents"), timeout_s=DEADLINE_S)
        world.inject("prefect-api-down", mode="timeout")
        wait_for(lambda: outage_entries(incident.id), timeout_s=HANG_BOUND_S)
        world.clear("prefect-api-down")

    join = in_background(outage)
    started = time.monotonic()
    with temporary_settings(
        updates={PREFECT_API_REQUEST_TIMEOUT: REQUEST_TIMEOUT_S, PREFECT_CLIENT_MAX_RETRIES: 1}
    ):
        state = respond(incident=ref(incident), **RESPOND_FAST, return_state=True)
    elapsed = time.monotonic() - started
    join()

    assert elapsed < HANG_BOUND_S, f"respond took {elapsed:.0f}s with the API hanging"
    assert state.is_completed(), state
    assert "Traceback" not in (state.message or "")
    result = state.result()
    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert "the Prefect API" in result.summary and "Timeout" in result.summary
    assert world.revision() == revision  # the runbook never ran: nothing changed
    texts = [m["text"] for m in world.slack.all_messages("incidents")]
    assert any("respond stopped" in t and "Prefect API" in t for t in texts)
    assert final_state_in_prefect(state, prefect_api) == "COMPLETED"
