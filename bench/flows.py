"""`python -m bench.flows`: each runbook against the sandbox with every wait at zero, wall time vs I/O.

Usage::

    python -m bench.flows                       # every scenario, 5 runs each
    python -m bench.flows --runs 10 --scenarios service-down/rollback database-lost/pool-size
    python -m bench.flows --json flows.json     # also every run's figures

Each run calls the flow as a person's "Run" would (a real flow run, recorded by a Prefect test server
started here) against an in-process sandbox world with its fault injected; the world is reset and the
incident resolved between runs, so every run does the whole job. Waits the guide prescribes (settle
30 s, polls every 2-30 s, verification deadlines) are set to (near) zero: what is left is the
machinery. The flow's own thread is metered:

- **world I/O**: the Kubernetes API (the official client, urllib3), the service's and external APIs'
  HTTP endpoints (httpx) and PostgreSQL (psycopg) — what the runbook waits on from the systems it
  works on;
- **Prefect API**: the flow's own calls to the Prefect server (run and task states, logs flushed at
  the end, artifacts);
- **sleep**: the remaining poll intervals (0.01 s each);
- **rest**: Python in the flow's thread (the engine, pydantic, the runbook's logic).

Calls made by other threads (the sandbox's servers, Prefect's background log and event workers) are
not counted; the sandbox runs in the same process, so it competes for the GIL as a remote cluster
would not. Bad options print one line naming the option and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SCENARIOS", "IoMeter", "main"]

CATEGORIES = ("world", "prefect", "sleep")


class IoMeter:
    """Time spent by one thread in HTTP (httpx), the Kubernetes client (urllib3), psycopg and sleep.

    Installs wrappers around the libraries' entry points for as long as it is active; a call made
    inside another metered call (e.g. a retry) is counted once, at the outermost level.
    """

    def __init__(self, thread: threading.Thread, prefect_url: str) -> None:
        self.thread = thread
        self.prefect_url = prefect_url.rstrip("/")
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._depth = 0

    def _category_of_url(self, url: str) -> str:
        return "prefect" if url.startswith(self.prefect_url) else "world"

    def _timed(self, category: Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        meter = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not meter.thread or meter._depth:
                return fn(*args, **kwargs)
            meter._depth += 1
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                meter._depth -= 1
                name = category(*args, **kwargs)
                meter.totals[name] += time.perf_counter() - started
                meter.calls[name] += 1

        return wrapper

    @contextmanager
    def active(self) -> Iterator[IoMeter]:
        import httpx
        import psycopg
        import urllib3.connectionpool

        patches: list[tuple[Any, str, Any]] = [
            (httpx.Client, "send", lambda _self, request, *a, **k: self._category_of_url(str(request.url))),
            (urllib3.connectionpool.HTTPConnectionPool, "urlopen", lambda *a, **k: "world"),
            (psycopg.Cursor, "execute", lambda *a, **k: "world"),
            (time, "sleep", lambda *a, **k: "sleep"),
        ]
        import kubeops

        real_sleep = time.sleep
        originals = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
        connect = psycopg.Connection.__dict__["connect"]  # a classmethod
        # functions that took `sleep=time.sleep` as a default captured the real one: swap it too
        with_sleep = [kubeops.wait_for_rollout]
        defaults = [(fn, fn.__defaults__) for fn in with_sleep]
        try:
            for owner, name, category in patches:
                setattr(owner, name, self._timed(category, getattr(owner, name)))
            for fn, old in defaults:
                fn.__defaults__ = tuple(time.sleep if d is real_sleep else d for d in old or ())
            psycopg.Connection.connect = classmethod(  # type: ignore[method-assign,assignment]
                self._timed(lambda *a, **k: "world", connect.__func__)
            )
            yield self
        finally:
            for owner, name, original in originals:
                setattr(owner, name, original)
            for fn, old in defaults:
                fn.__defaults__ = old
            psycopg.Connection.connect = connect  # type: ignore[method-assign]


@dataclass
class Run:
    scenario: str
    outcome: str
    wall_s: float
    io_s: dict[str, float]
    calls: dict[str, int]

    @property
    def rest_s(self) -> float:
        return self.wall_s - sum(self.io_s.get(c, 0.0) for c in CATEGORIES)


@dataclass
class Scenario:
    """A fault to inject (and how far to let it develop) and the runbook call that answers it."""

    fault: tuple[str, str | None, dict[str, Any]]
    runbook: str
    params: dict[str, Any]
    expect: str
    steps: int = 0
    clear_after_requests: int = 0  # external API: lift the outage after this many health probes
    notes: list[str] = field(default_factory=list)


SCENARIOS: dict[str, Scenario] = {
    "service-down/rollback": Scenario(
        ("bad-deploy", None, {"ago_min": 2}),
        "service_down",
        {"settle_s": 0, "poll_interval_s": 0.01},
        "rolled_back",
    ),
    "service-down/investigate": Scenario(
        ("bad-deploy", None, {"ago_min": 120}),
        "service_down",
        {"settle_s": 0, "poll_interval_s": 0.01},
        "escalated",
    ),
    "database-lost/pool-reset": Scenario(
        ("db-pool-stale", None, {}),
        "database_lost",
        {"verify_deadline_s": 5, "poll_interval_s": 0.01},
        "recovered",
    ),
    "database-lost/pool-size": Scenario(
        ("db-pool-exhausted", None, {"size": 2}),
        "database_lost",
        {"verify_deadline_s": 0.01, "poll_interval_s": 0.01},
        "recovered",
    ),
    "database-lost/provider-restart": Scenario(
        ("db-down", None, {}),
        "database_lost",
        {"verify_deadline_s": 5, "poll_interval_s": 0.01},
        "recovered",
    ),
    "resource-exhaustion/scale": Scenario(
        ("memory-leak", None, {}),
        "resource_exhaustion",
        {"verify_deadline_s": 5, "poll_interval_s": 0.01},
        "mitigated",
        steps=20,
    ),
    "external-api-failure/recover": Scenario(
        ("api-down", "hume", {"mode": "5xx"}),
        "external_api_failure",
        {"apis": ["hume"], "poll_interval_s": 0.01, "recovery_deadline_s": 30},
        "recovered",
        clear_after_requests=2,
    ),
}


def _runbook(name: str) -> Callable[..., Any]:
    from flows.database_lost import database_lost
    from flows.external_api_failure import external_api_failure
    from flows.resource_exhaustion import resource_exhaustion
    from flows.service_down import service_down

    runbooks: dict[str, Callable[..., Any]] = {
        "service_down": service_down,
        "database_lost": database_lost,
        "resource_exhaustion": resource_exhaustion,
        "external_api_failure": external_api_failure,
    }
    return runbooks[name]


def _lift_after(world: Any, api: str, requests: int) -> threading.Thread:
    """The external API comes back once the runbook has probed it `requests` times."""
    from sandbox.testing import wait_for

    health = world.apis.api(api).health_path

    def watch() -> None:
        wait_for(lambda: len(world.apis.api(api).server.requests_to(health)) >= requests, timeout_s=30)
        world.clear("api-down")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def run_one(world: Any, key: str, prefect_url: str) -> Run:
    scenario = SCENARIOS[key]
    fault, arg, args = scenario.fault
    world.inject(fault, arg, **args)
    if scenario.steps:
        world.step(scenario.steps)
    watcher = (
        _lift_after(world, arg or "", scenario.clear_after_requests)
        if scenario.clear_after_requests
        else None
    )
    runbook = _runbook(scenario.runbook)
    meter = IoMeter(threading.current_thread(), prefect_url)
    with meter.active():
        started = time.perf_counter()
        result = runbook(**scenario.params)
        wall = time.perf_counter() - started
    if watcher is not None:
        watcher.join(timeout=30)
    if result.outcome.value != scenario.expect:
        raise RuntimeError(f"{key}: expected {scenario.expect}, got {result.outcome.value}: {result.summary}")
    return Run(key, result.outcome.value, wall, dict(meter.totals), dict(meter.calls))


def run(keys: list[str], runs: int, progress: Callable[[str], None]) -> list[Run]:
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from sandbox.postgres import EmbeddedPostgres
    from sandbox.testing import running_world

    results: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-flows-pg-") as pg_dir,
        prefect_test_harness(server_startup_timeout=60),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        pg = EmbeddedPostgres(data_dir=Path(pg_dir))
        pg.start()
        try:
            prefect_url = str(PREFECT_API_URL.value())
            for i in range(runs + 1):
                for key in keys:  # interleaved: load drift hits every scenario alike
                    # a fresh world (and store) per run: no incident, ReplicaSet or claim carried over
                    with running_world(postgres=pg, leak_interval_s=0) as world:
                        r = run_one(world, key, prefect_url)
                    if i == 0:  # warm-up round: imports, first connections, the engine's caches
                        continue
                    progress(f"run {i}/{runs} {key}: {r.outcome} in {r.wall_s:.2f} s")
                    results.append(r)
        finally:
            pg.destroy()
    return results


def _median(values: list[float]) -> float:
    from bench.stats import percentile

    return percentile(values, 50)


def table(results: list[Run], runs: int) -> str:
    from bench.stats import markdown_table

    rows = []
    for key in dict.fromkeys(r.scenario for r in results):
        mine = [r for r in results if r.scenario == key]
        wall = _median([r.wall_s for r in mine])
        world = _median([r.io_s.get("world", 0.0) for r in mine])
        prefect = _median([r.io_s.get("prefect", 0.0) for r in mine])
        sleep = _median([r.io_s.get("sleep", 0.0) for r in mine])
        rest = _median([r.rest_s for r in mine])
        calls = _median([float(r.calls.get("world", 0)) for r in mine])
        rows.append(
            [
                key,
                mine[0].outcome,
                wall,
                world,
                f"{100 * world / wall:.0f}%",
                prefect,
                f"{100 * prefect / wall:.0f}%",
                sleep,
                rest,
                f"{calls:.0f}",
            ]
        )
    header = [
        "scenario",
        "outcome",
        "wall s",
        "world I/O s",
        "world %",
        "Prefect API s",
        "Prefect %",
        "sleep s",
        "rest s",
        "world calls",
    ]
    intro = (
        f"`python -m bench.flows --runs {runs}` on {platform.node()} ({os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f} at the end); medians of {runs} runs."
    )
    return intro + "\n\n" + markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.flows", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="runs per scenario (default 5)")
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), metavar="SCENARIO")
    p.add_argument("--json", type=Path, help="also write every run's figures to this file")
    args = p.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        print(f"--scenarios: unknown {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    if args.runs < 1:
        print("--runs: must be at least 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-flows-") as home:
        os.environ.setdefault("PREFECT_HOME", home)
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        results = run(args.scenarios, args.runs, lambda line: print(line, file=sys.stderr, flush=True))
    print(table(results, args.runs))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
