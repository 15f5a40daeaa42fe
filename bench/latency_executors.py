"""Bench 2's executors: the processes that run `respond/<path>` (serve, a process worker, the warm runner).

Each is started as a child process with its environment (poll frequencies set low so the bench measures
the path, not a default poll) and the log line that says it is ready; `worker` first registers the
process work pool and its deployment.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.latency_results import STANDIN, Options
from bench.procs import REPO, Proc

__all__ = ["READY", "STANDIN_ENTRYPOINT", "WORK_POOL", "Executor", "start_executors"]

STANDIN_ENTRYPOINT = "bench/standin.py:respond"
WORK_POOL = "bench-process"
READY = {"serve": "Your deployments are being served", "worker": "started!", "warm": "warm runner ready"}


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
class Executor:
    """A started executor process and the log line that says it is ready."""

    proc: Proc
    ready: re.Pattern[str]


@contextmanager
def start_executors(
    path: str, api_url: str, workdir: Path, env: dict[str, str], options: Options
) -> Iterator[list[Executor]]:
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
            Executor(
                stack.enter_context(Proc.start(f"{name}-{path}", argv, workdir / "logs", env=e)),
                re.compile(re.escape(ready)),
            )
            for name, argv, e, ready in specs
        ]
