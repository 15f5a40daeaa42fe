"""`make demo` end to end: ready, the incident to its all-clear, the UI in a browser, Ctrl-C, again.

The tests run in file order on one demo (conftest.py), as a person would use it: watch the incident,
start a runbook from the UI's form, stop with Ctrl-C, start again.
"""

from __future__ import annotations

import re
import signal

import httpx
import pytest
from demo_process import ARTIFACTS, DemoProcess, start_demo, stop_demo

from sandbox.supervise import port_free
from sandbox.testing import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_demo_gets_ready_and_plays_the_incident_to_its_all_clear(running_demo: DemoProcess) -> None:
    demo = running_demo
    demo.wait_for_line(r"ready in \d+\.\d+s", timeout_s=180)
    # progress while starting: what starts, what is ready
    text = demo.text()
    for part in (
        "Prefect database \\(PostgreSQL",
        "sandbox world",
        "Prefect server",
        "intake",
        "deployments served",
    ):
        assert re.search(rf"✓ .*{part}.* ready \(\d+\.\ds\)", text), part
    # a run whose runner dies is set Crashed: the automation is on the demo's server
    assert re.search(
        r"✓ crashed runs detected: automation 'runbooks: crashed runs \(no heartbeat\)' created", text
    )
    assert f"Prefect UI      {demo.ui}" in text
    # the demo shortens the guide's waits, and says so (RUNBOOK_DEMO_STABILITY_WINDOW_S, _SETTLE_S)
    assert "respond watches 30 s for stability after the fix (the guide: 120 s;" in text

    demo.wait_for_line(r"✅ all-clear .* after the bad deploy", timeout_s=420)
    text = demo.text()
    assert "injecting bad-deploy" in text
    assert "Alertmanager → intake: 202, incident " in text
    # the flow runs, named with their UI addresses
    assert re.search(rf"flow run respond/[\w-]+: {re.escape(demo.ui)}/runs/flow-run/[0-9a-f-]{{36}}", text)
    assert re.search(r"flow run service-down/[\w-]+: ", text)
    assert re.search(r"service-down/[\w-]+ → Completed", text)
    # Post-Incident: respond started the post-mortem once the incident was resolved
    demo.wait_for_line(r"post-mortem written", timeout_s=90)
    assert re.search(r"flow run postmortem/[\w-]+: ", demo.text())
    # the Slack stand-in's thread, to the guide's all-clear
    assert "slack #alerts-critical: 👀 Acknowledged" in text
    assert re.search(r"slack #incidents \(thread\): Action \(service-down\): rolled_back", text)
    assert "slack #incidents (thread): ✅ [RESOLVED]" in text
    assert "Status: STABLE ✅" in text
    assert re.search(r"sandbox: prod/emotionscare revision \d+, image \S+:v1\.1\.0", text)  # the good image


@pytest.mark.browser
def test_a_person_starts_service_down_from_the_ui_form_and_sees_its_timeline(
    running_demo: DemoProcess,
) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    demo = running_demo
    demo.wait_for_line(r"✅ all-clear|✗", timeout_s=420)
    control = re.search(r"SANDBOX_CONTROL_URL=(\S+)", (demo.var / "demo.env").read_text())
    assert control is not None
    answer = httpx.post(f"{control.group(1)}/faults/bad-deploy", json={}, timeout=30)
    assert answer.status_code == 200, answer.text  # a bad deploy, made now: the form's run rolls it back
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

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
            # Deployments › service-down
            page.goto(f"{demo.ui}/deployments", wait_until="networkidle")
            page.get_by_placeholder("Search deployments").fill("service-down")
            expect(page.get_by_text("1 Deployment")).to_be_visible()
            page.locator(
                "a[href^='/deployments/deployment/']", has_text=re.compile(r"^\s*service-down\s*$")
            ).click()
            # Run › Custom run: the typed form, with the docstring's descriptions
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Custom run").click()
            page.wait_for_url(re.compile(r"/run(\?|$)"))
            expect(
                page.get_by_text("a deploy this recent (minutes) is rolled back (the guide: 15)")
            ).to_be_visible()
            settle = page.get_by_text("settle_s (Optional)", exact=True).locator("xpath=following::input[1]")
            settle.fill("0")
            page.get_by_role("button", name="Submit").click()
            # the toast names the new run and links it ("<name> scheduled to start now", View run)
            toast = page.locator("p", has_text="scheduled to start").first
            expect(toast).to_be_visible()
            run_name = toast.inner_text().split(" scheduled to start")[0].strip()
            runs = httpx.post(
                f"{demo.ui}/api/flow_runs/filter",
                json={"flow_runs": {"name": {"any_": [run_name]}}},
                timeout=10,
            ).json()
            assert len(runs) == 1, (run_name, runs)  # one click, one run
            run_id = runs[0]["id"]
            # toasts slide in (and Prefect shows two): click without waiting for them to stand still
            toast.get_by_role("button", name="View run").click(force=True)
            try:
                page.wait_for_url(re.compile(rf"/runs/flow-run/{run_id}"), timeout=10_000)
            except PlaywrightTimeout:  # the click landed during the animation: open the link it carries
                page.goto(f"{demo.ui}/runs/flow-run/{run_id}", wait_until="networkidle")
            expect(page.get_by_text("Completed", exact=True).first).to_be_visible(timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "ui-service-down-run.png"), full_page=True)
            # Artifacts › the markdown timeline
            page.get_by_text("Artifacts", exact=True).click()
            card = page.get_by_text(re.compile(r"service-down: rolled_back"))
            expect(card).to_be_visible()
            card.click()
            expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
            expect(page.get_by_text(re.compile(r"Step 3: deployed \d+ min ago"))).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "ui-service-down-timeline.png"), full_page=True)
        finally:
            browser.close()

    run = httpx.get(f"{demo.ui}/api/flow_runs/{run_id}", timeout=10).json()
    assert run["state"]["type"] == "COMPLETED"
    assert run["parameters"]["settle_s"] == 0  # what the form sent
    status = httpx.get(f"{control.group(1)}/status", timeout=10).json()
    assert status["deployment"]["image"].endswith(":v1.1.0")  # rolled back to the good image


def test_ctrl_c_stops_every_process_and_frees_every_port(running_demo: DemoProcess) -> None:
    demo = running_demo
    demo.wait_for_line(r"ready in", timeout_s=180)
    assert demo.processes(), "the demo's processes are visible before the stop"

    code = stop_demo(demo, timeout_s=90)  # SIGINT, as Ctrl-C sends

    assert code == 0, demo.text()[-3000:]
    assert "stopped: every process ended" in demo.text()
    wait_for(lambda: demo.processes() == [], timeout_s=10, interval_s=0.2)  # reaped by now, at the latest
    assert [p for p in demo.ports if not port_free(p)] == []


def test_a_second_demo_starts_again_on_the_same_ports_and_folder(
    running_demo: DemoProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    first = running_demo
    assert first.proc.poll() is not None  # the previous test stopped it
    (first.var / "prefect" / "stale-marker").parent.mkdir(parents=True, exist_ok=True)
    (first.var / "prefect" / "stale-marker").write_text("left from the first run")
    second = start_demo(
        first.output.parent,
        "--no-incident",
        env=first.env,
    )
    try:
        second.wait_for_line(r"ready in \d+\.\d+s", timeout_s=180)
        assert not (first.var / "prefect" / "stale-marker").exists()  # a fresh start
        assert second.proc.poll() is None
    finally:
        second.proc.send_signal(signal.SIGINT)
        assert second.proc.wait(timeout=90) == 0
    assert [p for p in second.ports if not port_free(p)] == []
