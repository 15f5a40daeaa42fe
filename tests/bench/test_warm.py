"""flows/warm.py: runs executed in the runner's own process, each exactly once, however many runners.

- the claim: Prefect's orchestration accepts one `Pending` proposal per scheduled run and refuses the
  next (what makes two runners safe), and refuses it for a run cancelled before it was claimed;
- two `python -m flows.warm` processes on one server, 5 runs created at once: each run executed
  exactly once (one line per execution), Completed, in one of the two runners' processes, its logs
  in the API; both runners stop cleanly on SIGTERM;
- a run still executing when the runner stops past its grace period is reported Crashed;
- bad command lines get one line naming what is wrong.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from bench.procs import Proc, prefect_env
from bench.standin import EXECUTIONS, MARK_DIR_ENV
from flows.warm import WarmRunner, WarmTarget, claim, main
from sandbox.testing import wait_for


async def _create_runs(deployment: str, count: int, *, incident: bool = True) -> list[Any]:
    """`count` runs, one after the other: at once, a SQLite server answers 503 and clients back off ~2 s."""
    from prefect.deployments import arun_deployment

    def parameters(i: int) -> dict[str, Any]:
        return {"incident_id": f"inc-{i}"} if incident else {}

    return [await arun_deployment(deployment, parameters=parameters(i), timeout=0) for i in range(count)]


def _flow_runs(ids: list[UUID]) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))


def _log_messages(flow_run_id: UUID) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [entry.message for entry in logs]


def test_the_server_accepts_one_claim_per_run(prefect_api: str) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client

    @flow(name="warm-claim-probe")
    def probe() -> None:
        """Never executed: its runs are only claimed."""

    deployment: Any = probe.to_deployment(name="unserved")
    deployment.apply()
    [flow_run] = asyncio.run(_create_runs("warm-claim-probe/unserved", 1, incident=False))

    async def two_claims() -> tuple[Any, Any]:
        async with get_client() as first, get_client() as second:
            return await claim(first, flow_run), await claim(second, flow_run)

    won, lost = asyncio.run(two_claims())
    assert won is not None and won.is_pending()
    assert lost is None
    assert _flow_runs([flow_run.id])[0].state.is_pending()

    # A run cancelled before any runner claimed it is never started: its claim is refused too.
    from prefect.states import Cancelled

    [cancelled] = asyncio.run(_create_runs("warm-claim-probe/unserved", 1, incident=False))

    async def cancel_then_claim() -> Any:
        async with get_client() as client:
            await client.set_flow_run_state(cancelled.id, Cancelled(), force=True)
            return await claim(client, cancelled)

    assert asyncio.run(cancel_then_claim()) is None
    assert _flow_runs([cancelled.id])[0].state.is_cancelled()


@pytest.fixture
def two_runners(prefect_api: str, tmp_path: Path) -> Iterator[tuple[list[Proc], Path]]:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = prefect_env(prefect_api, tmp_path / "home", **{MARK_DIR_ENV: str(marks)})
    argv = [
        "-m",
        "flows.warm",
        "--flow",
        "bench.standin:respond=warm-twice",
        "--poll",
        "0.05",
        "--grace",
        "10",
    ]
    with ExitStack() as stack:
        procs = [
            stack.enter_context(Proc.start(f"warm-{i}", [sys.executable, *argv], tmp_path / "logs", env=env))
            for i in range(2)
        ]
        for proc in procs:
            proc.wait_for_log(re.compile("warm runner ready"), 60)
        yield procs, marks


def test_two_runners_execute_each_of_five_runs_exactly_once(two_runners: tuple[list[Proc], Path]) -> None:
    procs, marks = two_runners
    created = asyncio.run(_create_runs("respond/warm-twice", 5))
    ids = [run.id for run in created]

    def all_completed() -> bool:
        return all(run.state and run.state.is_completed() for run in _flow_runs(ids))

    assert wait_for(all_completed, 30), [(r.name, r.state_name) for r in _flow_runs(ids)]

    executions = [json.loads(line) for line in (marks / EXECUTIONS).read_text().splitlines()]
    assert sorted(e["flow_run_id"] for e in executions) == sorted(str(i) for i in ids)  # once each
    assert {e["pid"] for e in executions} <= {p.pid for p in procs}  # in a runner's own process

    for proc in procs:  # SIGTERM: finish, flush the logs, exit 0
        assert proc.stop(timeout_s=20) == 0, proc.tail()
        assert "stopping" in proc.log_text()

    def logged(run_id: UUID) -> Callable[[], bool]:
        return lambda: any("respond stand-in" in message for message in _log_messages(run_id))

    for run_id in ids:
        assert wait_for(logged(run_id), 15), run_id


def test_a_run_still_executing_after_the_grace_period_is_reported_crashed(prefect_api: str) -> None:
    from prefect import flow

    started, release = threading.Event(), threading.Event()

    @flow(name="warm-slow")
    def slow() -> None:
        started.set()
        release.wait(10)  # bounded: the test releases it right after the stop

    runner = WarmRunner([WarmTarget.of(slow, "slow")], poll_s=0.05, grace_s=0.2, events=False)
    try:
        runner.start()
        assert runner.wait_ready(30)
        [flow_run] = asyncio.run(_create_runs("warm-slow/slow", 1, incident=False))
        assert started.wait(15), "the run did not start"
        runner.stop(timeout_s=15)
        [state] = [r.state for r in _flow_runs([flow_run.id])]
        assert state is not None and state.is_crashed(), state
        assert "grace" in (state.message or "")
        assert list(runner.executed) == [flow_run.id] and runner.runs_executed == 1
    finally:
        release.set()
        runner.stop(timeout_s=15)
        assert wait_for(lambda: runner.in_flight == 0, 15)  # the released thread has ended


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--flow", "bench.standin:respond"], "--flow must be module:flow=deployment-name"),
        (["--flow", "bench.nothing_here:respond=x"], "cannot load bench.nothing_here:respond"),
        (["--flow", "bench.standin:MARK_DIR_ENV=x"], "is not a Prefect flow"),
        (["no-such-runbook"], "unknown deployment(s) no-such-runbook"),
        (["--flow", "bench.standin:respond=x", "--limit", "0"], "limit must be at least 1"),
    ],
)
def test_bad_command_lines_get_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
