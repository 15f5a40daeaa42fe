"""`make demo` restarts a runner process that dies, as Kubernetes restarts a pod.

The demo (`python -m sandbox.demo --no-incident`) is started as a person starts it; the test
`kill -9`s its warm `respond` runner, sees the supervisor start it again (a new process, the same
command), and then an alert posted to intake is answered by a `respond` run that the new runner
executes. Waits are bounded polls (`wait_for`), never sleeps.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from demo_process import DemoProcess, start_demo, stop_demo

from sandbox.testing import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoProcess]:
    running = start_demo(tmp_path, "--no-incident")
    try:
        running.wait_for_line(r"ready in \d+\.\d+s", timeout_s=240)
        yield running
    finally:
        if running.proc.poll() is None:
            stop_demo(running)


def _runner_pids(demo: DemoProcess) -> list[int]:
    """The demo's `python -m flows.warm respond` processes."""
    found = []
    for pid in demo.processes():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"flows.warm" in cmdline and b"respond" in cmdline:
            found.append(pid)
    return found


def _respond_runs(api: str) -> list[dict[str, object]]:
    body = {"flows": {"name": {"any_": ["respond"]}}, "limit": 20}
    answer = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=5)
    answer.raise_for_status()
    runs: list[dict[str, object]] = answer.json()
    return runs


def test_a_killed_respond_runner_is_restarted_and_serves_the_next_alert(demo: DemoProcess) -> None:
    [old] = wait_for(lambda: _runner_pids(demo), timeout_s=30)
    os.kill(old, signal.SIGKILL)

    restarted = demo.wait_for_line(r"↻ runner-respond restarted \(pid (\d+), restart 1\)", timeout_s=60)
    new = int(restarted.group(1))
    assert new != old and _runner_pids(demo) == [new]
    assert re.search(r"✗ runner-respond exited with -9; restarting it in \d+s", demo.text())
    log = demo.var / "logs" / "runner-respond.log"

    def ready_again() -> bool:
        _, _, after = log.read_text(errors="replace").partition("restarted by the supervisor after exit -9")
        return "warm runner ready" in after

    wait_for(ready_again, timeout_s=90, interval_s=0.5)

    # Serving: an alert's respond run is executed (claimed, Running or ended) by the new runner.
    env = (demo.var / "demo.env").read_text()
    token = re.search(r"INTAKE_TOKEN=(\S+)", env)
    assert token is not None
    alert = {
        "alerts": [
            {
                "name": "RunnerRestartProbe",
                "service": "emotionscare",
                "status": "firing",
                "summary": "a probe alert after the runner's restart",
            }
        ]
    }
    answer = httpx.post(
        f"http://127.0.0.1:{demo.intake_port}/alerts/generic",
        json=alert,
        headers={"Authorization": f"Bearer {token.group(1)}"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    api = f"{demo.ui}/api"

    def executed() -> list[dict[str, object]]:
        return [r for r in _respond_runs(api) if r.get("state_type") not in (None, "SCHEDULED", "PENDING")]

    [run] = wait_for(executed, timeout_s=60, interval_s=0.5)

    def in_new_runner_log() -> bool:  # the engine's first lines, in the restarted runner's output
        _, _, after = log.read_text(errors="replace").partition("restarted by the supervisor")
        return f"'{run['name']}'" in after

    wait_for(in_new_runner_log, timeout_s=30, interval_s=0.5)
    assert demo.proc.poll() is None  # the demo itself kept running throughout
