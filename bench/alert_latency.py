"""Bench 2: from an alert's POST to intake until the first line of the `respond` flow runs.

Usage::

    python -m bench latency                                 # n=20 per path, a fresh `prefect server start`
    python -m bench latency --n 5 --paths warm serve
    python -m bench latency --api-url http://127.0.0.1:4200/api     # an existing server

    results = run(Options(n=1, gap_s=(0, 0)), api_url=harness_url)  # in code (tests/bench)
    print(report(results))

Set-up: a local Prefect server (`prefect server start`, SQLite, a free port, PREFECT_SERVER_API_PORT
set) unless `api_url` is given. For each path, one after the other: the executor is started and
registers (or is given) its deployment `respond/<path>`; then `python -m intake` (dispatch on,
`RUNBOOK_PREFECT_RESPOND_DEPLOYMENT=respond/<path>`, its own SQLite store) is started. Each trial
POSTs one new alert (its own name, so its own incident) to `/alerts/generic` and waits until the
flow's first line has run; then a random gap (`gap_s`, seeded) so trials do not line up with a poll.
The first `warmup` trials of each path are reported apart and not counted.

The flow is `bench.standin:respond` (flows/respond.py is being written): same name and parameter
shape as the real one; its first line takes `time.time()` and writes it to a mark file. Two clocks,
both reported, all on this machine:
- first line: the mark's time minus the time just before the POST;
- API: the flow run's `start_time` (its Running state, as the server recorded it) minus the POST.
The breakdown comes from the API too: run created (intake's dispatcher), Pending (claimed by the
executor), Running (the engine started).

Paths:
- `serve`: `serve()` (what `python -m flows.serve` does), PREFECT_RUNNER_POLL_FREQUENCY=1: a new
  process per run;
- `worker`: `prefect worker start --type process`, PREFECT_WORKER_QUERY_SECONDS=1: a new process per run;
- `warm`: `python -m flows.warm` (in-process runs; woken by the server's event stream, poll 0.25 s);
- `warm-poll`: the same with `--no-events`: polling every 0.25 s only;
- `warm-and-serve` (only when asked for): `flows.warm` and `serve()` both watching one deployment;
  each run is executed once, and the table says how many ran in a new process (serve won the claim).
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.latency_executors import start_executors
from bench.latency_results import PATHS, Options, PathResult, Trial, report
from bench.procs import (
    BENCH_TOKEN,
    BenchProcessFailed,
    Proc,
    intake_process,
    prefect_env,
    prefect_server,
)
from bench.standin import EXECUTIONS, MARK_DIR_ENV, mark_path

__all__ = ["PATHS", "Options", "PathResult", "Trial", "report", "run"]

# -- one path -------------------------------------------------------------------------------------


def _generic_alert(name: str) -> bytes:
    alert = {"name": name, "service": "emotionscare", "severity": "P1", "summary": f"{name} (latency bench)"}
    return json.dumps({"alerts": [alert]}).encode()


def _wait_mark(mark_dir: Path, incident_id: str, timeout_s: float, procs: list[Proc]) -> dict[str, Any]:
    path = mark_path(mark_dir, incident_id)
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        for proc in procs:
            if proc.popen.poll() is not None:
                raise BenchProcessFailed(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        if time.monotonic() > deadline:
            tails = "".join(f"\n-- {proc.name}:\n{proc.tail(15)}" for proc in procs)
            raise BenchProcessFailed(
                f"no first line for incident {incident_id} within {timeout_s:g} s{tails}"
            )
        time.sleep(0.002)
    mark: dict[str, Any] = json.loads(path.read_text())
    return mark


async def _fill_from_api(api_url: str, trials: list[Trial]) -> None:
    """Created / Pending / Running times of each trial's flow run, as the server recorded them."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        async with get_client() as client:
            for trial in trials:
                run_id = uuid.UUID(trial.flow_run_id)
                flow_run = await client.read_flow_run(run_id)
                trial.created_at = flow_run.created.timestamp() if flow_run.created else None
                trial.running_at = flow_run.start_time.timestamp() if flow_run.start_time else None
                states = await client.read_flow_run_states(run_id)
                pending = [s.timestamp for s in states if s.type.value == "PENDING"]
                trial.pending_at = min(pending).timestamp() if pending else None


def _run_path(path: str, api_url: str, workdir: Path, options: Options, rng: random.Random) -> PathResult:
    mark_dir = workdir / f"marks-{path}"
    mark_dir.mkdir(parents=True, exist_ok=True)
    env = prefect_env(api_url, workdir / "prefect-client-home", **{MARK_DIR_ENV: str(mark_dir)})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {BENCH_TOKEN}"}
    store_url = f"sqlite:///{workdir / f'incidents-{path}.sqlite3'}"
    intake_env = {**env, "RUNBOOK_PREFECT_RESPOND_DEPLOYMENT": f"respond/{path}"}
    with (
        start_executors(path, api_url, workdir, env, options) as executors,
        intake_process(workdir, store_url, name=f"intake-{path}", dispatch=True, env=intake_env) as (
            intake,
            url,
        ),
        httpx.Client(base_url=url, timeout=10.0) as client,
    ):
        for executor in executors:
            executor.proc.wait_for_log(executor.ready, options.startup_timeout_s)
        procs = [intake, *(e.proc for e in executors)]
        result = PathResult(path, executors[-1].proc.pid)  # the warm runner is last when there is one
        token = uuid.uuid4().hex[:6]
        for i in range(options.warmup + options.n):
            body = _generic_alert(f"BenchLatency-{path}-{token}-{i}")
            post_at = time.time()
            answer = client.post("/alerts/generic", content=body, headers=headers)
            answered_at = time.time()
            if answer.status_code != 202:
                raise BenchProcessFailed(f"intake answered {answer.status_code}: {answer.text[:300]}")
            [incident_id] = answer.json()["incidents_created"]
            mark = _wait_mark(mark_dir, incident_id, options.trial_timeout_s, procs)
            result.trials.append(
                Trial(
                    index=i,
                    warmup=i < options.warmup,
                    incident_id=incident_id,
                    post_at=post_at,
                    answered_at=answered_at,
                    first_line_at=float(mark["first_line_at"]),
                    pid=int(mark["pid"]),
                    flow_run_id=str(mark["flow_run_id"]),
                )
            )
            time.sleep(rng.uniform(*options.gap_s))  # decorrelate from the executors' poll phase
    asyncio.run(_fill_from_api(api_url, result.trials))
    executions = mark_dir / EXECUTIONS
    lines = executions.read_text().splitlines() if executions.exists() else []
    result.executions = Counter(json.loads(line)["flow_run_id"] for line in lines)
    return result


def run(
    options: Options | None = None, *, api_url: str | None = None, workdir: Path | None = None
) -> list[PathResult]:
    """Every path of `options.paths`, one after the other, against `api_url` or a server started here."""
    options = options or Options()
    rng = random.Random(options.seed)
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
            stack.callback(shutil.rmtree, workdir, True)
        if api_url is None:
            database_url = None
            if options.prefect_db == "postgresql":
                from sandbox.postgres import EmbeddedPostgres

                pg = stack.enter_context(EmbeddedPostgres(data_dir=workdir / "pg"))
                database_url = pg.create_database("prefect").replace("postgresql://", "postgresql+asyncpg://")
            api_url = stack.enter_context(
                prefect_server(
                    workdir, database_url=database_url, startup_timeout_s=options.startup_timeout_s
                )
            )
        return [_run_path(path, api_url, workdir, options, rng) for path in options.paths]
