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

Restarts, as Kubernetes restarts a pod (`restartPolicy: Always`)::

    sup.start("runner-respond", [python, "-m", "flows.warm", "respond"], env=env, restart=True)
    sup.keep_restarting()      # a thread: a restartable child that exits is started again

A child started with `restart=True` that exits (killed, crashed, or exited by itself) is started
again with the same command, environment and folder, after a back-off that doubles from
`RESTART_BACKOFF_S` up to `RESTART_BACKOFF_MAX_S` and falls back to the first step once the child has
stayed up `RESTART_BACKOFF_RESET_S` (Kubernetes: 10 s doubling to 5 min, reset after 10 min; shorter
here, for a laptop). Its log file is appended to, with a line saying why it restarted. `stop_all`
stops the restarting first, so nothing is started again while the system is being stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from sandbox.private_files import open_private, private_dir

__all__ = ["Child", "StartFailed", "Supervisor", "http_ready", "port_free", "wait_port_closed"]

RESTART_BACKOFF_S = 1.0
RESTART_BACKOFF_MAX_S = 30.0
RESTART_BACKOFF_RESET_S = 60.0


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
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    restart: bool = False
    """Start it again when it exits (`Supervisor.keep_restarting`)."""
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)
    exited_at: float | None = None

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
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        ready: Callable[[], bool] | None = None,
        timeout_s: float = 60.0,
        cwd: Path | None = None,
        restart: bool = False,
    ) -> Child:
        log_path = self.log_dir / f"{name}.log"
        self.say(f"… starting {name}")
        proc = _spawn(argv, env, cwd, log_path, "wb")
        child = Child(name, proc, log_path, list(argv), dict(env), cwd, restart)
        with self._lock:
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

    # -- restarts ------------------------------------------------------------------------------------
    def keep_restarting(self, interval_s: float = 0.5) -> None:
        """Watch the children in a thread; start again each `restart=True` child that exited (idempotent)."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._watcher = threading.Thread(
            target=self._watch, args=(interval_s,), name="supervisor-restarts", daemon=True
        )
        self._watcher.start()

    def _watch(self, interval_s: float) -> None:
        while not self._stopping.wait(interval_s):
            with self._lock:
                children = [c for c in self.children if c.restart]
            for child in children:
                try:
                    self.restart_if_exited(child)
                except OSError as exc:  # the command cannot start at all: say so, try again later
                    self.say(f"✗ could not restart {child.name}: {exc}")
                    child.exited_at = time.monotonic()

    def backoff_s(self, child: Child) -> float:
        """Seconds to wait after `child` exited before it is started again."""
        return float(min(RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_S * 2 ** min(child.restarts, 10)))

    def restart_if_exited(self, child: Child) -> bool:
        """Start `child` again if it exited and its back-off has passed (True if it was started)."""
        if self._stopping.is_set() or child.alive:
            return False
        now = time.monotonic()
        if child.exited_at is None:
            child.exited_at = now
            if now - child.started_at >= RESTART_BACKOFF_RESET_S:
                child.restarts = 0  # it had been up a while: a fresh crash, the short back-off again
            self.say(
                f"✗ {child.name} exited with {child.proc.returncode}; restarting it in {self.backoff_s(child):.0f}s"
            )
        if now - child.exited_at < self.backoff_s(child):
            return False
        with self._lock:
            if self._stopping.is_set():
                return False
            with open_private(child.log_path, "ab") as log:
                log.write(
                    f"\n=== restarted by the supervisor after exit {child.proc.returncode} ===\n".encode()
                )
            child.proc = _spawn(child.argv, child.env, child.cwd, child.log_path, "ab")
            child.restarts += 1
            child.started_at, child.exited_at = time.monotonic(), None
        self.say(f"↻ {child.name} restarted (pid {child.proc.pid}, restart {child.restarts})")
        return True

    # -- stop ------------------------------------------------------------------------------------------
    def stop_all(self, grace_s: float = 10.0) -> None:
        """Stop the children one by one, the last started first (a runner before the server it talks
        to, so it can still say goodbye to it): SIGINT, then SIGTERM after `grace_s`, then SIGKILL;
        finally whatever the child left in its process group (a served flow's run, a server worker).
        Nothing is restarted from here on."""
        with self._lock:
            self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
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


def _spawn(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path | None, log_path: Path, mode: str
) -> subprocess.Popen[bytes]:
    """The child in its own session (process group), its output to `log_path` (`wb` new, `ab` append)."""
    with open_private(log_path, mode) as log:
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
