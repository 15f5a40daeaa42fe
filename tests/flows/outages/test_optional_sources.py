"""Sources a run can do without: Sentry down while `service_down` investigates or `respond` assesses, and
the service's database down when `feature_broken` verifies the table the error names. The run ends in a
defined state (done, or escalated with what it found), never Failed, and says the source was out."""

from __future__ import annotations

import httpx
import pytest
from respond.world import open_incident, ref

from flows.diagnoses import conclusion_of
from flows.feature_broken import feature_broken
from flows.outages import SENTRY, classify
from flows.respond import respond
from flows.service_down import service_down
from runbook.models import IncidentRef, RunbookOutcome
from runbook.severity import Severity
from tasks import runtime

from .support import RESPOND_FAST


def notes(result, prefix: str) -> list[str]:
    return [e.message for e in result.timeline if e.message.startswith(prefix)]


@pytest.mark.parametrize("mode", ["5xx", "refuse"])
def test_service_down_sentry_down_while_investigating_escalates_with_the_rest(world, mode: str) -> None:
    world.inject("bad-deploy", ago_min=30)  # not recent: no rollback, the runbook investigates
    world.inject("sentry-down", mode=mode)
    revision = world.revision()

    state = service_down(settle_s=0.0, poll_interval_s=0.05, ready_deadline_s=10.0, return_state=True)

    assert state.is_completed(), state
    result = state.result()
    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert "not rolled back" in result.summary  # escalated for what it found, not for Sentry
    assert notes(result, "Sentry unavailable")
    assert any(e.kind == "logs" for e in result.evidence) or notes(result, "logs of")  # the rest was read
    assert world.revision() == revision


def test_respond_sentry_timing_out_the_response_goes_on_and_rolls_back(world, monkeypatch) -> None:
    monkeypatch.setenv("RUNBOOK_SENTRY_TIMEOUT_S", "0.5")  # each read gives up after 0.5 s (3 tries)
    runtime.reset()
    world.inject("bad-deploy")
    world.inject("sentry-down", mode="timeout", delay_s=30)
    incident = open_incident(Severity.P1, title="Homepage returns 500")

    state = respond(incident=ref(incident), **RESPOND_FAST, return_state=True)

    assert state.is_completed(), state
    result = state.result()
    assert result.outcome in (RunbookOutcome.ROLLED_BACK, RunbookOutcome.RECOVERED), result.summary
    assert notes(result, "Sentry unavailable"), [e.message for e in result.timeline if "Sentry" in e.message]


def test_feature_broken_database_down_at_the_table_check_escalates_without_the_table(world) -> None:
    world.inject("journal-broken")
    world.traffic.burst(24)  # the failing writes are in the metrics and in Sentry
    world.inject("db-down")

    state = feature_broken(
        incident=IncidentRef(summary="users can't create journal entries"), window_s=60, return_state=True
    )

    assert state.is_completed(), state
    result = state.result()
    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert conclusion_of(result) == "database_table"  # concluded from Sentry and the metrics alone
    assert notes(result, "database state unavailable: OperationalError")


def test_a_transport_error_to_sentry_is_named_sentry_not_the_service(world) -> None:
    url = f"{str(runtime.settings().sentry.api_url).rstrip('/')}/projects/emotionscare/emotionscare/issues/"
    outage = classify(httpx.ConnectError("refused", request=httpx.Request("GET", url)))

    assert outage is not None and outage.dependency == SENTRY
    other = classify(httpx.ConnectError("refused", request=httpx.Request("GET", world.service.url)))
    assert other is not None and other.dependency != SENTRY
