"""Start child processes, wait until each is ready, and stop them all (and their children) on exit.

Usage::

    with Supervisor(log_dir=Path("var/demo/logs")) as sup:
        sup.start("prefect", [python, "-m", "prefect", "server", "start"], env=env,
                  ready=http_ready("http://127.0.0.1:4200/api/health"), timeout_s=60)
        ...
    # leaving the block (or Ctrl-C) stops every child: SIGINT, then SIGTERM, then SIGKILL

Each child runs in its own process group, so stopping it also stops what it started (a Prefect
server's workers, a served flow's run processes). Output goes to one log file per child; the last
lines are printed when a child fails to become ready, so the person sees why.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from sandbox.private_files import open_private, private_dir

__all__ = ["Child", "StartFailed", "Supervisor", "http_ready", "port_free", "wait_port_closed"]


class StartFailed(RuntimeError):
    """A child exited or did not become ready in time; the message ends with its log tail."""


def http_ready(url: str, expect: int = 200) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == expect
        except httpx.HTTPError:
            return False

    return check


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) != 0


def wait_port_closed(port: int, timeout_s: float = 10.0, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_free(port, host):
            return True
        time.sleep(0.1)
    return port_free(port, host)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class Supervisor:
    def __init__(self, log_dir: Path, say: Callable[[str], None] = print) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.say = say
        private_dir(log_dir)  # the children print their settings, tokens included

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        ready: Callable[[], bool] | None = None,
        timeout_s: float = 60.0,
        cwd: Path | None = None,
    ) -> Child:
        log_path = self.log_dir / f"{name}.log"
        self.say(f"… starting {name}")
        with open_private(log_path, "wb") as log:
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        if ready is None:
            return child
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if not child.alive:
                raise StartFailed(
                    f"{name} exited with {proc.returncode}; last lines of {log_path}:\n{child.tail()}"
                )
            if ready():
                self.say(f"✓ {name} ready ({time.monotonic() - started:.1f}s)")
                return child
            time.sleep(0.2)
        raise StartFailed(
            f"{name} not ready after {timeout_s:.0f}s; last lines of {log_path}:\n{child.tail()}"
        )

    def stop_all(self, grace_s: float = 10.0) -> None:
        """Stop the children one by one, the last started first (a runner before the server it talks
        to, so it can still say goodbye to it): SIGINT, then SIGTERM after `grace_s`, then SIGKILL;
        finally whatever the child left in its process group (a served flow's run, a server worker)."""
        for child in reversed(self.children):
            started = time.monotonic()
            if child.alive:
                self.say(f"… stopping {child.name}")
                _signal_group(child.proc, signal.SIGINT)
            try:
                child.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.say(f"  {child.name} still running after {grace_s:.0f}s: SIGTERM")
                _signal_group(child.proc, signal.SIGTERM)
                try:
                    child.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    _signal_group(child.proc, signal.SIGKILL)
                    child.proc.wait(timeout=3)
            _signal_group(child.proc, signal.SIGKILL)
            self.say(f"✓ {child.name} stopped ({time.monotonic() - started:.1f}s)")
        self.children.clear()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
