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
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.procs import (
    BENCH_TOKEN,
    REPO,
    BenchProcessFailed,
    Proc,
    intake_process,
    prefect_env,
    prefect_server,
)
from bench.standin import EXECUTIONS, MARK_DIR_ENV, mark_path
from bench.stats import Summary, markdown_table

__all__ = ["PATHS", "Options", "PathResult", "Trial", "report", "run"]

PATHS = ("serve", "worker", "warm", "warm-poll")
EXTRA_PATHS = ("warm-and-serve",)
"""Not run unless asked: `flows.warm` and `serve()` watching one deployment (who claims the runs?)."""
STANDIN = "bench.standin:respond"
STANDIN_ENTRYPOINT = "bench/standin.py:respond"
WORK_POOL = "bench-process"
READY = {"serve": "Your deployments are being served", "worker": "started!", "warm": "warm runner ready"}


@dataclass(frozen=True)
class Options:
    n: int = 20
    warmup: int = 1
    paths: tuple[str, ...] = PATHS
    gap_s: tuple[float, float] = (0.2, 1.2)
    seed: int = 6
    trial_timeout_s: float = 30.0
    startup_timeout_s: float = 90.0
    warm_poll_s: float = 0.25
    prefect_db: str = "sqlite"
    """The database of the Prefect server the bench starts: `sqlite` or `postgresql` (embedded)."""

    def __post_init__(self) -> None:
        if self.n < 1 or self.warmup < 0:
            raise ValueError("n must be >= 1 and warmup >= 0")
        unknown = [p for p in self.paths if p not in PATHS + EXTRA_PATHS]
        if unknown:
            known = ", ".join(PATHS + EXTRA_PATHS)
            raise ValueError(f"unknown path(s) {', '.join(unknown)}; known: {known}")
        if self.prefect_db not in ("sqlite", "postgresql"):
            raise ValueError(f"prefect_db must be sqlite or postgresql (got {self.prefect_db!r})")
        if not 0 <= self.gap_s[0] <= self.gap_s[1]:
            raise ValueError(f"gap_s must be (low, high) with 0 <= low <= high (got {self.gap_s})")


@dataclass
class Trial:
    index: int
    warmup: bool
    incident_id: str
    post_at: float
    answered_at: float
    first_line_at: float
    pid: int
    flow_run_id: str
    created_at: float | None = None
    pending_at: float | None = None
    running_at: float | None = None

    @property
    def first_line_s(self) -> float:
        return self.first_line_at - self.post_at

    def since_post(self, at: float | None) -> float | None:
        return None if at is None else at - self.post_at


@dataclass
class PathResult:
    path: str
    executor_pid: int
    """The warm runner's process when the path has one, else the executor's (runs never run in it)."""
    trials: list[Trial] = field(default_factory=list)
    executions: Counter[str] = field(default_factory=Counter)

    @property
    def measured(self) -> list[Trial]:
        return [t for t in self.trials if not t.warmup]

    def summary(self, what: str = "first_line") -> Summary:
        values = [_value(t, what) for t in self.measured]
        return Summary.of([v for v in values if v is not None])

    @property
    def in_process(self) -> bool:
        return bool(self.measured) and self.in_new_process == 0

    @property
    def in_new_process(self) -> int:
        """Measured trials whose flow ran in a process other than the warm runner's."""
        return sum(t.pid != self.executor_pid for t in self.measured)

    @property
    def exactly_once(self) -> bool:
        return all(self.executions.get(t.flow_run_id) == 1 for t in self.trials)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "n": len(self.measured),
            "first_line_s": _summary_json(self.summary("first_line")),
            "api_running_s": _summary_json(self.summary("running")),
            "warmup_first_line_s": [t.first_line_s for t in self.trials if t.warmup],
            "in_executor_process": self.in_process,
            "in_new_process": self.in_new_process,
            "exactly_once": self.exactly_once,
            "trials": [t.__dict__ for t in self.trials],
        }


def _value(trial: Trial, what: str) -> float | None:
    if what == "first_line":
        return trial.first_line_s
    if what == "answer":
        return trial.answered_at - trial.post_at
    return trial.since_post(
        {"created": trial.created_at, "pending": trial.pending_at, "running": trial.running_at}[what]
    )


def _summary_json(s: Summary) -> dict[str, float]:
    return {"n": s.n, "median": s.median, "p95": s.p95, "max": s.max, "min": s.min}


# -- executors ------------------------------------------------------------------------------------


async def _register_worker_deployment(api_url: str) -> None:
    """The process work pool and `respond/worker` in it; the worker runs the code from this checkout."""
    from prefect import Flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        async with get_client() as client:
            try:
                await client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
            except ObjectAlreadyExists:
                pass  # a second run against the same server
            flow: Any = await Flow.afrom_source(source=str(REPO), entrypoint=STANDIN_ENTRYPOINT)
            deployment = await flow.ato_deployment(name="worker", work_pool_name=WORK_POOL)
            await deployment.aapply()


@dataclass
class _Executor:
    proc: Proc
    ready: re.Pattern[str]


@contextmanager
def _executors(
    path: str, api_url: str, workdir: Path, env: dict[str, str], options: Options
) -> Iterator[list[_Executor]]:
    """The path's executor processes, started (the caller waits for each one's `ready` line)."""
    python = sys.executable
    specs: list[tuple[str, list[str], dict[str, str], str]] = []
    if path in ("serve", "warm-and-serve"):
        argv = [python, "-m", "bench.serve_standin", path]
        specs.append(("serve", argv, {**env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}, READY["serve"]))
    if path == "worker":
        asyncio.run(_register_worker_deployment(api_url))
        argv = [python, "-m", "prefect", "worker", "start", "--pool", WORK_POOL, "--type", "process"]
        specs.append(("worker", argv, {**env, "PREFECT_WORKER_QUERY_SECONDS": "1"}, READY["worker"]))
    if path in ("warm", "warm-poll", "warm-and-serve"):
        argv = [python, "-m", "flows.warm", "--flow", f"{STANDIN}={path}", "--poll", str(options.warm_poll_s)]
        if path == "warm-poll":
            argv.append("--no-events")
        specs.append(("warm", argv, env, READY["warm"]))
    with ExitStack() as stack:
        yield [
            _Executor(
                stack.enter_context(Proc.start(f"{name}-{path}", argv, workdir / "logs", env=e)),
                re.compile(re.escape(ready)),
            )
            for name, argv, e, ready in specs
        ]


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
        _executors(path, api_url, workdir, env, options) as executors,
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


def _new_process_text(result: PathResult) -> str:
    if result.in_process:
        return "no (in-process)"
    if result.in_new_process == len(result.measured) and result.path != "warm-and-serve":
        return "yes"
    return f"{result.in_new_process} of {len(result.measured)}"


def report(results: list[PathResult], options: Options | None = None) -> str:
    options = options or Options()

    def ms(value: float) -> str:
        return f"{value * 1000:,.0f}"

    rows = []
    for r in results:
        first, api = r.summary("first_line"), r.summary("running")
        rows.append(
            [
                r.path,
                first.n,
                ms(first.median),
                ms(first.p95),
                ms(first.max),
                ms(api.median),
                ms(api.p95),
                _new_process_text(r),
                "yes" if r.exactly_once else "NO",
            ]
        )
    table = markdown_table(
        [
            "path",
            "n",
            "first line median ms",
            "p95 ms",
            "max ms",
            "API Running median ms",
            "p95 ms",
            "new process per run",
            "each run once",
        ],
        rows,
    )
    breakdown = markdown_table(
        [
            "path",
            "202 answer",
            "run created",
            "Pending (claimed)",
            "Running (API)",
            "first line",
            "warm-up first line",
        ],
        [
            [
                r.path,
                ms(r.summary("answer").median),
                ms(r.summary("created").median),
                ms(r.summary("pending").median),
                ms(r.summary("running").median),
                ms(r.summary("first_line").median),
                ", ".join(ms(t.first_line_s) for t in r.trials if t.warmup) or "–",
            ]
            for r in results
        ],
    )
    return "\n".join(
        [
            f"Alert POST → first line of `respond` ({STANDIN}); n={options.n} per path after "
            f"{options.warmup} warm-up; gap {options.gap_s[0]:g}–{options.gap_s[1]:g} s; "
            f"Prefect server on {options.prefect_db}; times in ms",
            "",
            table,
            "",
            "Medians since the POST, ms (from the API, except the answer and the first line):",
            "",
            breakdown,
        ]
    )
