"""The automation switch (auto / approve / observe), read from Prefect Variables before each write.

The flow tests run service_down against the sandbox world and the session's Prefect server; the
browser test starts its own `prefect server start` (the session's test harness serves no UI) and
flips the Variable through the UI's Variables page in Chromium.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStateName
from prefect.flow_runs import resume_flow_run
from prefect.variables import Variable

import flows.switch as switch
from flows.service_down import service_down
from runbook.models import ActionStatus, RunbookOutcome
from runbook.switch import FAIL_SAFE, Decision, Mode, decide
from sandbox.testing import wait_for
from sandbox.testing_prefect import prefect_server
from tasks import runtime

FAST = dict(settle_s=0.0, poll_interval_s=0.05, ready_deadline_s=10.0)
MODE, BY_SERVICE = switch.MODE_VARIABLE, switch.BY_SERVICE_VARIABLE


# -- the decision (pure) ---------------------------------------------------------------------------
def test_the_stricter_of_global_and_service_decides() -> None:
    assert decide(None, None, "svc") == Decision(Mode.AUTO, "default")
    assert decide(None, None, "svc", default=Mode.OBSERVE) == Decision(Mode.OBSERVE, "default")
    assert decide("approve", None, "svc") == Decision(Mode.APPROVE, "global")
    assert decide("auto", {"svc": "observe"}, "svc") == Decision(Mode.OBSERVE, "service svc")
    assert decide("auto", {"other": "observe"}, "svc") == Decision(Mode.AUTO, "global")
    assert decide("observe", {"svc": "auto"}, "svc") == Decision(Mode.OBSERVE, "global")  # never looser
    assert decide(" Observe ", None, "svc").mode is Mode.OBSERVE
    assert decide("approve", None, "svc").label() == "mode approve (global)"


def test_a_value_that_is_not_a_mode_fails_safe_and_says_which() -> None:
    bad = decide("off", None, "svc", global_name=MODE)
    assert bad.mode is FAIL_SAFE is Mode.APPROVE
    assert bad.source.startswith(f"fail-safe: {MODE}: 'off' is not a mode")
    assert decide("auto", ["svc"], "svc").mode is Mode.APPROVE  # not a map
    assert decide("auto", {"svc": 3}, "svc").mode is Mode.APPROVE


def test_an_unreadable_switch_fails_safe_to_approve(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(name: str, default: Any = None) -> Any:
        raise httpx.ConnectError("connection refused")

    monkeypatch.setattr(switch.Variable, "get", down)
    decision = switch.current("emotionscare")
    assert decision.mode is Mode.APPROVE
    assert decision.label() == (
        "mode approve (fail-safe: the switch could not be read (ConnectError: connection refused))"
    )


# -- runs against the sandbox ------------------------------------------------------------------------
@pytest.fixture
def variables(world: Any) -> Iterator[None]:
    """No switch set before or after (the Prefect server is the session's: other tests share it)."""
    for name in (MODE, BY_SERVICE):
        Variable.unset(name)
    yield
    for name in (MODE, BY_SERVICE):
        Variable.unset(name)


def _paused_run(timeout_s: float = 30.0) -> Any:
    def read() -> Any:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=dict(name=FlowRunFilterStateName(any_=["Paused"])))
            )
            return runs[0] if runs else None

    return wait_for(read, timeout_s=timeout_s, interval_s=0.1)


def _in_thread(**kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """service_down in a thread, under this thread's Prefect settings (the API it reports to)."""
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        box["state"] = context.run(lambda: service_down(**kwargs, return_state=True))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_observe_set_while_a_run_waits_to_act_stops_its_write_and_auto_lets_the_next_act(
    world: Any, variables: None
) -> None:
    world.inject("bad-deploy", ago_min=2)
    revision, image = world.revision(), world.live_image()
    thread, box = _in_thread(require_approval=True, approval_timeout_s=60, **FAST)
    paused = _paused_run()  # decided to roll back, waiting for its (runbook's own) approval

    Variable.set(MODE, "observe", overwrite=True)  # a person turns automation down meanwhile
    resume_flow_run(paused.id, run_input={"approve": True})
    thread.join(timeout=60)

    state = box["state"]
    assert state.is_completed()
    result = state.result()
    assert (world.revision(), world.live_image()) == (revision, image)  # nothing changed
    assert result.outcome == RunbookOutcome.DRY_RUN
    assert result.summary.startswith("mode observe (global): planned, not done, planned outcome rolled_back")
    assert [a.status for a in result.actions] == [ActionStatus.DRY_RUN]
    assert result.actions[0].detail.startswith(
        "mode observe (global): planned, not done: kubectl rollout undo"
    )
    plan = next(e.message for e in result.timeline if e.kind == "plan")
    assert plan.startswith("mode observe (global): planned, not done: would rollback prod/deployment/")
    assert not [a for a in runtime.store().list_actions(result.incident_id) if a.action == "rollback"]

    Variable.set(MODE, "auto", overwrite=True)
    again = service_down(**FAST)
    assert again.outcome == RunbookOutcome.ROLLED_BACK, again.summary
    assert world.revision() == revision + 1
    action = next(e.message for e in again.timeline if e.kind == "action")
    assert action.startswith("mode auto (global): rollback prod/deployment/emotionscare")


def test_approve_with_no_answer_writes_nothing_and_escalates(
    world: Any, variables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings().automation, "approval_timeout_s", 2)
    world.inject("bad-deploy", ago_min=2)
    revision = world.revision()
    Variable.set(MODE, "approve", overwrite=True)

    state = service_down(**FAST, return_state=True)

    assert state.is_completed()  # left Paused after the timeout, finished normally
    result = state.result()
    assert world.revision() == revision
    assert result.outcome == RunbookOutcome.ESCALATED
    assert "mode approve (global): nobody approved within 2s; not done" in result.summary
    notes = [(e.kind, e.message) for e in result.timeline]
    assert (
        "approval",
        "mode approve (global): waiting up to 2s for a person to approve: rollback "
        "prod/deployment/emotionscare: " + result.actions[0].detail.split(": ", 2)[2],
    ) in notes
    assert any(kind == "stopped" and "not done; escalate to a person" in msg for kind, msg in notes)
    assert not [a for a in runtime.store().list_actions(result.incident_id) if a.action == "rollback"]


def test_approve_answered_yes_in_the_form_acts(world: Any, variables: None) -> None:
    world.inject("bad-deploy", ago_min=2)
    revision = world.revision()
    Variable.set(MODE, "approve", overwrite=True)
    thread, box = _in_thread(**FAST)

    resume_flow_run(_paused_run().id, run_input={"approve": True, "comment": "lead: go"})
    thread.join(timeout=60)

    result = box["state"].result()
    assert result.outcome == RunbookOutcome.ROLLED_BACK, result.summary
    assert world.revision() == revision + 1
    notes = [e.message for e in result.timeline]
    assert "mode approve (global): approved by a person (lead: go)" in notes
    action = next(e.message for e in result.timeline if e.kind == "action")
    assert action.startswith("mode approve (global): rollback prod/deployment/emotionscare: kubectl rollout")


def test_a_service_override_turns_only_that_service_down(world: Any, variables: None) -> None:
    world.inject("bad-deploy", ago_min=2)
    revision = world.revision()
    Variable.set(MODE, "auto", overwrite=True)
    Variable.set(BY_SERVICE, {"some-other-service": "observe"}, overwrite=True)
    Variable.set(BY_SERVICE, {"emotionscare": "observe"}, overwrite=True)

    result = service_down(**FAST)

    assert world.revision() == revision
    assert result.outcome == RunbookOutcome.DRY_RUN
    assert result.summary.startswith("mode observe (service emotionscare): planned, not done")

    Variable.set(BY_SERVICE, {"some-other-service": "observe"}, overwrite=True)
    again = service_down(**FAST)
    assert again.outcome == RunbookOutcome.ROLLED_BACK, again.summary
    assert world.revision() == revision + 1


# -- flipped in the Prefect UI, in Chromium -----------------------------------------------------------
@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` with its UI (the session's harness runs the API only); its base URL."""
    with prefect_server(tmp_path_factory.mktemp("prefect-ui")) as base:
        yield base


def _set_in_the_ui(base: str, value: str) -> None:
    """In Chromium, the Prefect UI's Variables page: create `runbook_automation_mode` with `value`, or
    edit it if it exists. Playwright's loop is closed again before the test goes on (Prefect's sync
    calls must not run inside it)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)  # its 5 s default is short on a busy 2-core machine
            page.goto(f"{base}/variables", wait_until="networkidle")
            empty = page.get_by_text("Add a variable to get started")
            row = page.get_by_role("row").filter(has_text=MODE)
            expect(empty.or_(row)).to_be_visible()  # the page has loaded: no variables, or ours
            if empty.is_visible():
                page.get_by_role("button", name="Add Variable").click()
                dialog = page.get_by_role("dialog")
                dialog.locator("input.p-text-input__control").fill(MODE)
                submit = "Create"
            else:
                row.locator("button.p-button--outline").click()  # the row's menu
                page.locator(".p-overflow-menu-item", has_text="Edit").click()
                dialog = page.get_by_role("dialog")
                submit = "Save"
            dialog.locator("textarea.p-code-input__textarea").fill(f'"{value}"')  # the value is JSON
            dialog.get_by_role("button", name=submit).click()
            expect(page.get_by_role("row").filter(has_text=MODE)).to_contain_text(f'"{value}"')
        finally:
            browser.close()


@pytest.mark.browser
def test_observe_set_in_the_prefect_ui_while_a_run_waits_then_auto_again(world: Any, ui_server: str) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    world.inject("bad-deploy", ago_min=2)
    revision, image = world.revision(), world.live_image()
    with temporary_settings(updates={PREFECT_API_URL: f"{ui_server}/api"}):
        _set_in_the_ui(ui_server, "auto")
        thread, box = _in_thread(require_approval=True, approval_timeout_s=120, **FAST)
        paused = _paused_run(timeout_s=60)  # decided to roll back; waiting for its approval

        _set_in_the_ui(ui_server, "observe")  # a person turns automation down meanwhile
        resume_flow_run(paused.id, run_input={"approve": True})
        thread.join(timeout=120)
        result = box["state"].result()
        assert (world.revision(), world.live_image()) == (revision, image)  # nothing changed
        assert result.outcome == RunbookOutcome.DRY_RUN
        assert result.summary.startswith("mode observe (global): planned, not done"), result.summary

        _set_in_the_ui(ui_server, "auto")
        again = service_down(**FAST)
        assert again.outcome == RunbookOutcome.ROLLED_BACK, again.summary
        assert world.revision() == revision + 1
