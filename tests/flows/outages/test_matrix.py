"""The outage matrix: each runbook or diagnosis flow with each dependency it uses failing, the cells not
covered elsewhere (docs/safety.md's table names the test of every cell). One fast test over the cells.

Each cell: the fault is in force when the run reaches the dependency; the run ends Completed in a defined
outcome (no traceback in its state): escalated, recorded in the result and in the incident's timeline in
the store with the dependency named (one cell, the service's database under error-rate-spike, is the
database runbook's own case and ends recovered); the service's Deployment, its pool, PostgreSQL and its
users' notifications are as they were, except what the cell's flow may change (`changes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from flows import outages
from flows.database_lost import database_lost
from flows.error_rate_spike import error_rate_spike
from flows.external_api_failure import external_api_failure
from flows.feature_broken import feature_broken
from flows.performance_degradation import performance_degradation
from flows.record import Record
from flows.resource_exhaustion import resource_exhaustion
from runbook.models import IncidentRef, RunbookOutcome
from sandbox.faults.gate import Gate
from tasks import runtime

from .support import DEADLINE_S, outage_entries

KUBERNETES = "API server is unavailable"  # what the Kubernetes API's 503 says, wherever it is quoted
SENTRY = "Sentry unavailable"
DATABASE = "database"
SERVICE = "the service failed"


@dataclass(frozen=True)
class Cell:
    """One flow × dependency: the scenario before the fault, the fault, what names the dependency."""

    flow: Callable[..., Any]
    scenario: tuple[tuple[str, dict[str, Any]], ...]
    fault: tuple[str, dict[str, Any]]
    named: str  # words that name the failed dependency in the escalation
    in_summary: bool = True  # False: an optional source, named in the timeline; escalated for what was found
    options: dict[str, Any] = field(default_factory=dict)
    burst: int = 0  # requests sent before the run, so the service's metrics show the fault
    changes: tuple[str, ...] = ()  # parts of the world the run may change (see tests/flows/conftest.py)
    outcome: RunbookOutcome = RunbookOutcome.ESCALATED


FAST = dict(poll_interval_s=0.05, ready_deadline_s=5.0)

CELLS: dict[str, Cell] = {
    # -- the Kubernetes API (503 on every call) ------------------------------------------------------------
    "database-lost/kubernetes": Cell(
        database_lost,
        (("db-pool-exhausted", {"size": 2}),),
        ("k8s-api-down", {"mode": "5xx"}),
        KUBERNETES,
        options=dict(FAST, verify_deadline_s=0.5),
        changes=("pool_generation",),  # option 1 (the pool reset) is the service's, not the cluster's
    ),
    "external-api-failure/kubernetes": Cell(
        external_api_failure,
        (("api-down", {"api": "hume", "mode": "down-5xx"}),),
        ("k8s-api-down", {"mode": "5xx"}),
        KUBERNETES,
        options=dict(poll_interval_s=0.1, recovery_deadline_s=0.3),
    ),
    "error-rate-spike/kubernetes": Cell(
        error_rate_spike,
        (("error-rate", {"arg": "8"}),),
        ("k8s-api-down", {"mode": "5xx"}),
        KUBERNETES,
        in_summary=False,  # logs, top and the rollout history are evidence: noted, the diagnosis goes on
        options=dict(FAST, window_s=60),
        burst=60,
    ),
    "feature-broken/kubernetes": Cell(
        feature_broken,
        (("journal-broken", {}),),
        ("k8s-api-down", {"mode": "5xx"}),
        KUBERNETES,
        in_summary=False,
        options=dict(FAST, window_s=60),
        burst=24,
    ),
    "performance-degradation/kubernetes": Cell(
        performance_degradation,
        (("error-rate", {"arg": "8"}),),
        ("k8s-api-down", {"mode": "5xx"}),
        KUBERNETES,
        in_summary=False,
        options=dict(samples=1, sample_interval_s=0, window_s=60, threshold_ms=0.001),
        burst=20,
    ),
    # -- Sentry (503 on every call) ------------------------------------------------------------------------
    "error-rate-spike/sentry": Cell(
        error_rate_spike,
        (("error-rate", {"arg": "8"}),),
        ("sentry-down", {"mode": "5xx"}),
        SENTRY,
        in_summary=False,
        options=dict(FAST, window_s=60),
        burst=60,
    ),
    "feature-broken/sentry": Cell(
        feature_broken,
        (("journal-broken", {}),),
        ("sentry-down", {"mode": "refuse"}),
        SENTRY,
        in_summary=False,
        options=dict(FAST, window_s=60),
        burst=24,
    ),
    # -- the service's database (PostgreSQL stopped) --------------------------------------------------------
    "error-rate-spike/database": Cell(  # the database runbook's own case: the provider restarts it
        error_rate_spike,
        (("error-rate", {"arg": "8"}),),
        ("db-down", {}),
        DATABASE,
        options=dict(FAST, window_s=60),
        burst=60,
        changes=("postgres", "pool_generation"),
        outcome=RunbookOutcome.RECOVERED,
    ),
    "performance-degradation/database": Cell(
        performance_degradation,
        (("error-rate", {"arg": "8"}),),
        ("db-down", {}),
        DATABASE,
        in_summary=False,
        options=dict(samples=1, sample_interval_s=0, window_s=60, threshold_ms=0.001),
        burst=20,
    ),
    # -- the service itself: its metrics endpoint refused (the load balancer gone) --------------------------
    "error-rate-spike/service": Cell(
        error_rate_spike,
        (("error-rate", {"arg": "8"}),),
        ("infra-down", {}),
        SERVICE,
        options=dict(FAST, window_s=60),
        burst=20,
    ),
    "feature-broken/service": Cell(
        feature_broken,
        (("journal-broken", {}),),
        ("infra-down", {}),
        SERVICE,
        options=dict(FAST, window_s=60),
    ),
    "performance-degradation/service": Cell(
        performance_degradation,
        (("error-rate", {"arg": "8"}),),
        ("infra-down", {}),
        SERVICE,
        options=dict(samples=1, sample_interval_s=0, window_s=60),
    ),
    # -- an external API the service calls, refusing: the diagnosis's finding, bounded by the probe's timeout
    "performance-degradation/external-api": Cell(
        performance_degradation,
        (("error-rate", {"arg": "8"}),),
        ("api-down", {"api": "hume", "mode": "down-refused"}),
        "hume",
        options=dict(samples=1, sample_interval_s=0, window_s=60, threshold_ms=0.001),
        burst=20,
    ),
}


def _inject(world: Any, name: str, args: dict[str, Any]) -> None:
    args = dict(args)
    arg = args.pop("arg", None) or args.pop("api", None)
    world.inject(name, arg, **args)


@pytest.mark.parametrize("name", list(CELLS))
def test_a_dependency_failing_mid_run_ends_in_its_defined_outcome(world, sandbox_state, name: str) -> None:
    cell = CELLS[name]
    for fault, args in cell.scenario:
        _inject(world, fault, args)
    if cell.burst:
        world.traffic.burst(cell.burst)
    _inject(world, *cell.fault)
    before = sandbox_state()

    state = cell.flow(incident=IncidentRef(summary=name), **cell.options, return_state=True)

    assert state.is_completed(), state
    assert "Traceback" not in (state.message or "")
    result = state.result()
    assert result.outcome == cell.outcome, result.summary
    stored = runtime.store().timeline(result.incident_id)
    said = [e.message for e in stored]
    assert any(cell.named in m for m in said), said  # the dependency is named in the incident's record
    if cell.in_summary:
        assert cell.named in result.summary, result.summary
    ends = [e for e in stored if e.kind in ("outcome", "outage")]  # the hand-over's posts may follow
    assert ends and cell.outcome.value in ends[-1].message, said
    unchanged(before, sandbox_state(), cell.changes)


def unchanged(before: dict[str, Any], after: dict[str, Any], changes: tuple[str, ...] = ()) -> None:
    for key in set(before) - {"faults", *changes}:
        assert after[key] == before[key], f"{key} changed"


# -- the Prefect API, gone once the run has opened its incident ---------------------------------------------

PREFECT_CELLS: dict[str, tuple[Callable[..., Any], tuple[str, dict[str, Any]], dict[str, Any], int]] = {
    "database-lost": (
        database_lost,
        ("db-pool-exhausted", {"size": 2}),
        dict(FAST, verify_deadline_s=0.5),
        0,
    ),
    "resource-exhaustion": (
        resource_exhaustion,
        ("memory-leak", {}),
        dict(FAST, verify_deadline_s=0.5),
        0,
    ),
    "external-api-failure": (
        external_api_failure,
        ("api-down", {"api": "hume", "mode": "down-5xx"}),
        dict(poll_interval_s=0.1, recovery_deadline_s=0.3),
        0,
    ),
    "error-rate-spike": (error_rate_spike, ("error-rate", {"arg": "8"}), dict(FAST, window_s=60), 60),
    "feature-broken": (feature_broken, ("journal-broken", {}), dict(FAST, window_s=60), 24),
    "performance-degradation": (
        performance_degradation,
        ("error-rate", {"arg": "8"}),
        dict(samples=1, sample_interval_s=0, window_s=60, threshold_ms=0.001),
        20,
    ),
}


@pytest.mark.parametrize("name", list(PREFECT_CELLS))
def test_the_prefect_api_gone_mid_run_ends_escalated_and_writes_nothing(
    world, gated: Gate, sandbox_state, monkeypatch, name: str
) -> None:
    runbook, scenario, options, burst = PREFECT_CELLS[name]
    _inject(world, *scenario)
    if burst:
        world.traffic.burst(burst)
    before = sandbox_state()
    open_record = Record.open

    def open_then_lose_the_api(*args: Any, **kwargs: Any) -> Record:
        """The run has started and opened its incident: from here on the Prefect API refuses."""
        rec = open_record(*args, **kwargs)
        world.inject("prefect-api-down", mode="refuse")
        return rec

    monkeypatch.setattr(Record, "open", open_then_lose_the_api)
    escalate = outages.escalate

    def escalate_then_bring_the_api_back(*args: Any, **kwargs: Any) -> Any:
        """The escalation recorded (its artifact could not be written): the API is back for the final state."""
        try:
            return escalate(*args, **kwargs)
        finally:
            world.clear("prefect-api-down")

    monkeypatch.setattr(outages, "escalate", escalate_then_bring_the_api_back)

    started = time.monotonic()
    # No client retries: each call to the API gone fails at once (test_prefect_api.py runs with retries).
    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}):
        state = runbook(incident=IncidentRef(summary=name), **options, return_state=True)
    elapsed = time.monotonic() - started

    assert elapsed < DEADLINE_S
    assert state.is_completed(), state
    assert "Traceback" not in (state.message or "")
    result = state.result()
    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert "the Prefect API" in result.summary
    assert any("Prefect API" in e.message for e in outage_entries(result.incident_id))
    unchanged(before, sandbox_state())  # every write waited for the switch, which could not be read
    # (the final state reached the server: the engine returns it only then; test_prefect_api.py reads it back)
