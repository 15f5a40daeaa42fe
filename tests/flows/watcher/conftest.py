"""A response that survives its process: a Prefect server that runs automations, a killable `respond`
runner, intake's sweeper, and one sandbox world, shared by the module (each test is one incident).

- `server`: `prefect server start` (with its services: the zombie automation fires only there) on a
  database of the session's PostgreSQL, the crashed-runs automation applied (heartbeat 30 s, the
  shortest window Prefect allows: 45 s); its API URL, set as this process's PREFECT_API_URL.
- `world`: the sandbox world (Kubernetes, the service, Slack, PagerDuty, Sentry stand-ins and the
  store), its RUNBOOK_* settings in os.environ for the module.
- `runner`: `respond.serve()` in its own process group (a run per child process, heartbeats every
  30 s), restartable after a test killed it (`runner.ensure()`), as Kubernetes restarts a pod.
- `sweeper`: intake's sweeper (intake/sweep.py) in a thread of this process, one pass a second.
- `stand_ins`: for the cheap tests, no server of their own: Slack and PagerDuty stand-ins and a SQLite
  store, the RUNBOOK_* settings pointed at them; `open_p1(name)` opens a P1 incident in that store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.automations import apply, load_crash_detection_settings
from intake.sweep import Sweeper, SweepSettings
from runbook.models import Alert, AlertSource, Incident, Signals
from runbook.severity import Severity
from sandbox.pagerduty import PagerDutyStandIn
from sandbox.postgres import EmbeddedPostgres
from sandbox.slack import SlackStandIn
from sandbox.testing import running_world, wait_for
from sandbox.testing_prefect import prefect_env, prefect_server, stop_group
from sandbox.world import World
from tasks import runtime

ROOT = Path(__file__).resolve().parents[3]
_PROCESS_ENV = {"PREFECT_RUNNER_POLL_FREQUENCY": "1", "PYTHONUNBUFFERED": "1"}
"""What every Prefect process here gets (the server, the runners, the CLI): runners poll each second."""
HEARTBEAT_S, WINDOW_S = 30, 45
SCALE = 0.05
"""Acknowledgement deadlines × 0.05: P1 5 min → 15 s to the team lead, DevOps at 30 s."""

PARAMETERS = {
    "status_update_interval_s": 5.0,
    "ack_deadline_scale": SCALE,
    "escalation_poll_s": 0.5,
    "stability_window_s": 4.0,
    "join_timeout_s": 5.0,
    "runbook_options": {
        "settle_s": 3.0,
        "poll_interval_s": 0.1,
        "ready_deadline_s": 30.0,
        "verify_deadline_s": 10.0,
        "sample_interval_s": 0.2,
        "samples": 3,
        "window_s": 60.0,
    },
}
"""The deployment's defaults: the takeover run (parameters: the incident only) gets the same."""

RUNNER = """
import json, sys
from prefect import serve
from prefect.deployments.runner import EntrypointType
from flows.respond import respond

if __name__ == "__main__":  # the runner's children (multiprocessing spawn) import this file again
    # by module path: the child imports flows.respond as a module, as the warm runner does
    deployment = respond.to_deployment(
        name="respond", parameters=json.loads(sys.argv[1]), entrypoint_type=EntrypointType.MODULE_PATH
    )
    serve(deployment)
"""


def _env(api: str, home: Path, **extra: str) -> dict[str, str]:
    return prefect_env(api, home, **_PROCESS_ENV, **extra)


@pytest.fixture(scope="module")
def server(pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("prefect-server")
    dsn = pg_server.create_database("prefect_durable").replace("postgresql://", "postgresql+asyncpg://", 1)
    with prefect_server(home, database_url=dsn, extra_env=_PROCESS_ENV) as base:
        api = f"{base}/api"
        with temporary_settings(updates={PREFECT_API_URL: api}):
            apply(load_crash_detection_settings(env_file=None, heartbeat_s=HEARTBEAT_S, window_s=WINDOW_S))
            yield api


@pytest.fixture(scope="module")
def world(server: str, pg_server: EmbeddedPostgres) -> Iterator[World]:
    # Each test is one incident rolling back the same Deployment within minutes: the budget per target
    # (2 rollbacks an hour) would hold the third for a person's yes. These tests are about takeover.
    saved = os.environ.get(BUDGET)
    os.environ[BUDGET] = "100"
    try:
        with running_world(postgres=pg_server, step_interval_s=0) as started:
            yield started
    finally:
        if saved is None:
            os.environ.pop(BUDGET, None)
        else:
            os.environ[BUDGET] = saved


BUDGET = "RUNBOOK_SAFETY_BUDGET_ROLLBACKS"


class Runner:
    """`respond.serve()` in its own process group; `kill_run()` kills the process running a flow run,
    `kill_all()` the whole runner (no one left to report the run: the zombie automation must)."""

    def __init__(self, api: str, home: Path) -> None:
        self.api = api
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None
        (home / "runner.py").write_text(RUNNER)

    def ensure(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        env = _env(
            self.api,
            self.home / "prefect",
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_S),
            PYTHONPATH=str(ROOT),
        )
        log = open(self.home / "runner.log", "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(
            [sys.executable, str(self.home / "runner.py"), json.dumps(PARAMETERS)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def children(self) -> list[int]:
        """Every process below the runner (the flow runs' processes)."""
        if self.proc is None:
            return []
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
        return found

    def kill_run(self) -> None:
        pids = self.children()
        assert pids, "no flow run process under the runner"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    def kill_all(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)

    def log(self) -> str:
        path = self.home / "runner.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@pytest.fixture(scope="module")
def runner(server: str, world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    started = Runner(server, tmp_path_factory.mktemp("runner"))
    started.ensure()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def sweeper(server: str, world: World) -> Iterator[Sweeper]:
    settings = SweepSettings(_env_file=None, interval_s=1.0, grace_s=2.0, stale_s=30.0)  # type: ignore[call-arg]
    with Sweeper(runtime.store(), server, settings) as running:
        yield running


@pytest.fixture
def deployment_id(server: str, runner: Runner) -> Any:
    """The respond deployment's id, once the runner has registered it."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    found: list[Any] = []

    def registered() -> bool:
        runner.ensure()
        try:
            with get_client(sync_client=True) as client:
                found.append(client.read_deployment_by_name("respond/respond").id)
        except ObjectNotFound:
            return False
        return True

    wait_for(registered, timeout_s=90, interval_s=0.5)
    return found[-1]


SLACK_TOKEN = "xoxb-durable-test-token-0001"
PD_KEY = "R0DURABLETESTROUTINGKEY000000001"


@pytest.fixture
def stand_ins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[SlackStandIn, PagerDutyStandIn]]:
    slack = SlackStandIn(token=SLACK_TOKEN).start()
    pagerduty = PagerDutyStandIn(routing_keys=[PD_KEY]).start()
    env = {
        "RUNBOOK_ENVIRONMENT": "sandbox",
        "RUNBOOK_STORE_URL": f"sqlite:///{tmp_path / 'incidents.sqlite3'}",
        "RUNBOOK_SLACK_API_URL": f"{slack.url}/api",
        "RUNBOOK_SLACK_TOKEN": SLACK_TOKEN,
        "RUNBOOK_PAGERDUTY_EVENTS_URL": f"{pagerduty.url}/v2/enqueue",
        "RUNBOOK_PAGERDUTY_ROUTING_KEY": PD_KEY,
        "RUNBOOK_RETRY_BACKOFF_SCALE": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    runtime.reset()
    try:
        yield slack, pagerduty
    finally:
        runtime.reset()
        slack.stop()
        pagerduty.stop()


def open_p1(name: str, runbook: str | None = None) -> Incident:
    """A P1 incident for emotionscare in the test's store (fingerprint `name`)."""
    store = runtime.store()
    alert = store.add_alert(
        Alert(
            source=AlertSource.ALERTMANAGER,
            fingerprint=name,
            name="ServiceDown",
            service="emotionscare",
            annotations={"summary": f"emotionscare down ({name})"},
            signals=Signals(),
        )
    )
    incident, created = store.open_incident_for(alert, Severity.P1, "test.rule", runbook)
    assert created
    return incident
