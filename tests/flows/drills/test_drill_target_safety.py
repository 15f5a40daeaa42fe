"""A drill aimed at production without the explicit flag does nothing but refuse; with it, it is recorded."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from flows.drills import DrillRefused, clear_after_cancellation, drill_database_failure, drill_high_error_rate
from runbook.drill_history import open_history
from runbook.errors import RunbookError
from runbook.store import open_store
from sandbox.httpserver import HttpServer
from tasks.drill_targets import ControlApiTarget, FaultFailed, TargetUnavailable, register_target


@pytest.fixture
def prod_target(control_api: HttpServer) -> Iterator[ControlApiTarget]:
    target = ControlApiTarget("prod", "production", control_api.url, timeout_s=2)
    unregister = register_target(target)
    try:
        yield target
    finally:
        unregister()


def test_production_target_without_the_flag_is_refused_and_untouched(
    prefect_api: str, drill_env: Callable[..., str], control_api: HttpServer, prod_target: ControlApiTarget
) -> None:
    url = drill_env(RUNBOOK_ENVIRONMENT="production")
    state = drill_high_error_rate(target="prod", post_to_slack=False, return_state=True)
    assert state.is_failed()
    with pytest.raises(DrillRefused, match=r"target 'prod' is marked production: .*allow_production=True"):
        state.result()
    assert control_api.requests == []  # no fault injected, no request of any kind to the target
    with open_store(url) as store:
        assert store.list_incidents() == []
    with open_history(url) as history:
        (row,) = history.list()
    assert (row.status, row.target, row.environment, row.allow_production) == (
        "refused",
        "prod",
        "production",
        False,
    )


def test_runbooks_on_production_refuse_even_a_sandbox_marked_target(
    prefect_api: str, drill_env: Callable[..., str], control_api: HttpServer
) -> None:
    drill_env(RUNBOOK_ENVIRONMENT="production")
    unregister = register_target(ControlApiTarget("sandbox", "sandbox", control_api.url))
    try:
        with pytest.raises(DrillRefused, match="the runbooks' settings say production"):
            drill_high_error_rate(post_to_slack=False)
    finally:
        unregister()
    assert control_api.requests == []


def test_a_target_of_another_environment_is_refused(
    prefect_api: str, drill_env: Callable[..., str], control_api: HttpServer
) -> None:
    drill_env(RUNBOOK_ENVIRONMENT="staging")
    unregister = register_target(ControlApiTarget("sandbox", "sandbox", control_api.url))
    try:
        with pytest.raises(DrillRefused, match="target 'sandbox' is sandbox but the runbooks act on staging"):
            drill_high_error_rate(post_to_slack=False)
    finally:
        unregister()
    assert control_api.requests == []


def test_production_with_the_flag_runs_records_the_permission_and_clears(
    prefect_api: str, drill_env: Callable[..., str], control_api: HttpServer, prod_target: ControlApiTarget
) -> None:
    url = drill_env(RUNBOOK_ENVIRONMENT="production")
    result = drill_database_failure(
        target="prod",
        allow_production=True,
        post_to_slack=False,
        poll_interval_s=0.05,
        detect_deadline_s=0.2,
        recover_deadline_s=0.3,
        runbook_parameters={"verify_deadline_s": 0.1, "poll_interval_s": 0.05},
    )
    # the stand-in injects nothing real and the service is not there: the symptom shows at once,
    # the database-lost runbook escalates, the service never recovers: a failed drill, fault cleared
    assert result.allow_production is True and result.environment == "production"
    assert any("allow_production=True given" in e.message for e in result.timeline)
    paths = [(r.method, r.path) for r in control_api.requests]
    assert paths[:2] == [("GET", "/faults"), ("POST", "/faults/db-down")]
    assert paths[-1] == ("POST", "/clear") and result.fault_cleared
    assert control_api.requests[1].json() == {}
    with open_history(url) as history:
        (row,) = history.list()
    assert row.allow_production is True and row.status == "failed"


def test_unknown_target_is_named(prefect_api: str, drill_env: Callable[..., str]) -> None:
    drill_env()
    with pytest.raises(TargetUnavailable, match="unknown drill target 'nowhere'; known: sandbox"):
        drill_high_error_rate(target="nowhere", post_to_slack=False)


def test_the_cancellation_hook_never_contacts_a_refused_target(
    drill_env: Callable[..., str], control_api: HttpServer, prod_target: ControlApiTarget
) -> None:
    class Run:
        parameters = {"target": "prod", "allow_production": False}

    drill_env(RUNBOOK_ENVIRONMENT="production")
    clear_after_cancellation(None, Run(), None)
    assert control_api.requests == []
    Run.parameters = {"target": "prod", "allow_production": True}
    clear_after_cancellation(None, Run(), None)
    assert [(r.method, r.path) for r in control_api.requests] == [("POST", "/clear")]


def test_a_runbook_that_cannot_be_found_fails_the_drill_before_the_target_is_touched(
    prefect_api: str, drill_env: Callable[..., str], control_api: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    drill_env()
    unregister = register_target(ControlApiTarget("sandbox", "sandbox", control_api.url))
    monkeypatch.setattr("flows.catalogue.flows_by_name", lambda: {})
    try:
        with pytest.raises(RunbookError, match="runbook 'service-down' is not in the catalogue"):
            drill_high_error_rate(post_to_slack=False)
    finally:
        unregister()
    assert control_api.requests == []


class RefusingTarget:
    """A FaultTarget whose injections are refused (as a control API answering 409 would)."""

    name = "stuck"
    environment = "sandbox"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def inject(self, fault: str, args: object = None) -> None:
        self.calls.append(f"inject {fault}")
        raise FaultFailed("stuck: POST /faults/bad-deploy: HTTP 409: the database is down")

    def lift(self, fault: str) -> None:
        self.calls.append(f"lift {fault}")

    def clear(self) -> None:
        self.calls.append("clear")

    def active(self) -> list[str]:
        self.calls.append("active")
        return []


def test_a_fault_that_cannot_be_injected_fails_the_drill_with_the_reason(
    prefect_api: str, drill_env: Callable[..., str]
) -> None:
    url = drill_env()
    target = RefusingTarget()
    unregister = register_target(target)
    try:
        result = drill_high_error_rate(target="stuck", post_to_slack=False)
    finally:
        unregister()
    assert result.status == "failed" and "HTTP 409: the database is down" in result.reason
    assert result.incident_id is None and result.times.injected_at is None
    assert target.calls == ["active", "inject bad-deploy", "clear"]
    assert result.improvements[0].startswith("Nothing was exercised: fault bad-deploy could not be injected")
    with open_store(url) as store:
        assert store.list_incidents() == []
