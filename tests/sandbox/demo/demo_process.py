"""Helpers for tests/sandbox/demo: `python -m sandbox.demo` as a person runs it, on free ports and a temp folder.

One demo runs for the module (it takes ~20 s to start and ~2.5 min to play its incident): the tests
read its output, drive its Prefect UI in Chromium, then stop it with SIGINT and check that nothing
is left. Processes are found by the demo's own folder in their environment (`/proc/*/environ`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sandbox.supervise import port_free
from sandbox.testing import wait_for

REPO = Path(__file__).resolve().parents[3]
SANDBOX_PORTS = 14


def _ephemeral_start() -> int:
    """The first port the kernel hands out to outgoing connections (32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_ports(count: int, start: int = 20000, stop: int | None = None, step: int = 97) -> list[int]:
    """`count` consecutive free ports (for the sandbox's --port-base), searched deterministically
    *below* the ephemeral range: a port there can be free when checked and taken a moment later by
    an outgoing connection of the processes starting alongside (it happened in CI)."""
    stop = min(stop or 65535, _ephemeral_start())
    if stop - start < 10 * count:  # an unusual ephemeral range: search from the first unprivileged port
        start = 1024
    base = start + (os.getpid() * 131) % (stop - start)
    for _ in range(400):
        ports = list(range(base, base + count))
        if ports[-1] < stop and all(port_free(p) for p in ports):
            return ports
        base = start + (base - start + step * count) % (stop - start)
    raise RuntimeError("no run of free ports found")


@dataclass
class DemoProcess:
    proc: subprocess.Popen[bytes]
    output: Path
    var: Path
    env: dict[str, str]
    prefect_port: int
    intake_port: int
    sandbox_ports: list[int]

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}"

    @property
    def ports(self) -> list[int]:
        return [self.prefect_port, self.intake_port, *self.sandbox_ports]

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for_line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """Poll the output until a line matches `pattern` (or the demo exits); fail with the tail."""

        def matched_or_exited() -> tuple[re.Match[str] | None] | None:
            match = re.search(pattern, self.text(), re.MULTILINE)
            return (match,) if match or self.proc.poll() is not None else None

        try:
            (match,) = wait_for(matched_or_exited, timeout_s=timeout_s, interval_s=0.5)
        except AssertionError:
            match = None
        if match is not None:
            return match
        tail = "\n".join(self.text().splitlines()[-40:])
        raise AssertionError(f"no line matching {pattern!r} (exit {self.proc.poll()}); output tail:\n{tail}")

    def processes(self) -> list[int]:
        """PIDs of processes started for this demo (their environment names its folder)."""
        marker = f"RUNBOOK_DEMO_VAR={self.var}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                found.append(int(entry.name))
        return found


def demo_env(var: Path, prefect_port: int, intake_port: int, sandbox_base: int) -> dict[str, str]:
    """The environment a person has: no test settings; only the demo's ports and folder moved."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOK_", "PREFECT_"))}
    env.update(
        RUNBOOK_DEMO_VAR=str(var),
        RUNBOOK_DEMO_PREFECT_PORT=str(prefect_port),
        RUNBOOK_INTAKE_PORT=str(intake_port),
        RUNBOOK_DEMO_SANDBOX_PORT_BASE=str(sandbox_base),
    )
    return env


def start_demo(tmp: Path, *args: str, env: dict[str, str] | None = None) -> DemoProcess:
    """`python -m sandbox.demo ARGS` on free ports (or on those of `env`, a previous demo's)."""
    if env is None:
        ports = _free_ports(SANDBOX_PORTS + 2)
        env = demo_env(tmp / "var-demo", ports[0], ports[1], ports[2])
    var = Path(env["RUNBOOK_DEMO_VAR"])
    prefect_port, intake_port = int(env["RUNBOOK_DEMO_PREFECT_PORT"]), int(env["RUNBOOK_INTAKE_PORT"])
    base = int(env["RUNBOOK_DEMO_SANDBOX_PORT_BASE"])
    output = tmp / f"demo-{len(list(tmp.glob('demo-*.out')))}.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.demo", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    sandbox_ports = list(range(base, base + SANDBOX_PORTS))
    return DemoProcess(proc, output, var, env, prefect_port, intake_port, sandbox_ports)


def stop_demo(demo: DemoProcess, timeout_s: float = 60) -> int:
    if demo.proc.poll() is None:
        demo.proc.send_signal(signal.SIGINT)
    try:
        return demo.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        demo.proc.kill()
        for pid in demo.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise


ARTIFACTS = Path(os.environ.get("RUNBOOK_TEST_ARTIFACTS", REPO / "var" / "test-artifacts"))
"""Where browser screenshots are kept (CI prints the folder; var/ is not committed)."""
