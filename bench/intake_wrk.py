"""Intake throughput under `wrk` (a compiled load generator), on SQLite and PostgreSQL, side by side.

Usage::

    python -m bench.intake_wrk                                   # this checkout, both stores, both scenarios
    python -m bench.intake_wrk --duration 10 --connections 16 --stores sqlite
    python -m bench.intake_wrk --checkout before=/tmp/intake-s3-base --checkout after=.   # ABBA rounds

`wrk` is Debian's package: when it is missing the bench installs it (`apt-get install wrk`, through
`sudo` unless root; `.ci/run` does the same), and if it cannot (no apt-get, no permission,
`--no-install`) it says so and exits 2.

What runs, per checkout x store x scenario: a real `python -m intake --no-dispatch` of that checkout
(its code first on `PYTHONPATH`, the same `.venv`) on 127.0.0.1 on a fresh store (a new SQLite file; a
new database on one embedded PostgreSQL), a warm-up of `--warmup` seconds of distinct alerts, then `wrk`
for `--duration` seconds with `--connections` connections on `--threads` threads, POSTing realistic
Alertmanager webhooks (bench/intake_wrk.lua; the body of `bench.intake_throughput.alertmanager_body`).
`distinct`: every request a new alert (a new incident and outbox row); `storm`: one alert repeated
(joins one incident). A 202 means committed. After, the store is read: the measured requests' incidents
(distinct) or the storm incident's alert count must equal the 202s counted by wrk ("no loss").

Everything stays on loopback and bounded in time: each wrk run has its duration, each process is
stopped by its own id (bench/procs.py). With several checkouts the rounds go A B B A ..., so a drifting
machine load hits every side alike.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.intake_throughput import SCENARIOS, STORES, alertmanager_body, count_stored, postgres_server
from bench.procs import BENCH_TOKEN, REPO, intake_process
from bench.stats import markdown_table

__all__ = ["WrkRow", "ensure_wrk", "main", "run_wrk", "wrk_path"]

LUA = Path(__file__).with_name("intake_wrk.lua")
RESULT = re.compile(r"^WRK-RESULT (\{.*\})$", re.M)


def wrk_path() -> str | None:
    """The `wrk` executable on PATH, else None."""
    return shutil.which("wrk")


def ensure_wrk(install: bool = True) -> str | None:
    """`wrk` on PATH; when missing and `install`, Debian's package installed with apt first (what it runs
    is printed). None when it is still missing (no apt-get, no permission, the install failed)."""
    found = wrk_path()
    if found is not None or not install:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        return None
    sudo = [] if os.geteuid() == 0 else [shutil.which("sudo") or "sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "wrk"]):
        print(f"bench.intake_wrk: wrk is missing: {' '.join(sudo + step)}", file=sys.stderr, flush=True)
        try:
            done = subprocess.run(sudo + step, env=env, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"bench.intake_wrk: {exc}", file=sys.stderr)
            return None
        if done.returncode != 0:
            print(f"bench.intake_wrk: {done.stderr.strip()[-500:]}", file=sys.stderr)
            return None
    return wrk_path()


@dataclass
class WrkRow:
    checkout: str
    store: str
    scenario: str
    round: int
    connections: int
    duration_s: float
    requests: int
    accepted: int
    refused: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    stored: int
    load: tuple[float, float]
    cpu_ms_per_alert: float
    """The intake process's CPU time (user + system) during the measured run, per 202."""

    @property
    def alerts_per_s(self) -> float:
        return self.accepted / self.duration_s if self.duration_s else 0.0

    @property
    def lossless(self) -> bool:
        """Every 202 stored; at most `connections` more (in flight when wrk stopped: committed, uncounted)."""
        return self.accepted <= self.stored <= self.accepted + self.connections and self.refused == 0


def run_wrk(
    url: str,
    scenario: str,
    tag: str,
    *,
    connections: int,
    threads: int,
    duration_s: float,
    timeout_s: float = 10,
) -> dict[str, Any]:
    """One `wrk` run against `url`'s Alertmanager route; the figures its Lua script printed."""
    wrk = wrk_path()
    if wrk is None:
        raise FileNotFoundError("wrk")
    body = alertmanager_body(f"{tag}-@@N@@", "BenchAlert@@N@@", tag).decode()  # a fingerprint per run too
    if scenario == "storm":
        body = alertmanager_body(f"storm-{tag}", "BenchStorm", tag).decode()
    env = {**os.environ, "BENCH_BODY": body, "BENCH_SCENARIO": scenario, "BENCH_TOKEN": BENCH_TOKEN}
    argv = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{duration_s:g}s"]
    argv += ["--timeout", f"{timeout_s:g}s", "-s", str(LUA), f"{url}/alerts/alertmanager"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration_s + timeout_s + 30)
    found = RESULT.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-800:]} {done.stderr[-800:]}")
    result: dict[str, Any] = json.loads(found.group(1))
    return result


def _one(
    args: argparse.Namespace,
    checkout: tuple[str, Path],
    store: str,
    scenario: str,
    rnd: int,
    store_url: str,
    work: Path,
) -> WrkRow:
    name, repo = checkout
    tag = f"{name}-{store}-{scenario}-{rnd}"
    load_start = os.getloadavg()[0]
    workers = ["--workers", str(args.intake_workers)] if args.intake_workers > 1 else []
    env = _environment(repo, work)
    with intake_process(work, store_url, name=f"intake-{tag}", repo=repo, env=env, extra_args=workers) as (
        proc,
        url,
    ):
        _serving(url, args.intake_workers)
        if args.warmup > 0:
            run_wrk(
                url,
                "distinct",
                f"warmup-{tag}",
                connections=args.connections,
                threads=args.threads,
                duration_s=args.warmup,
            )
        with _profiled(args.profile, proc.pid, tag, args.duration):
            cpu = _cpu_s(proc.pid)
            r = run_wrk(
                url,
                scenario,
                tag,
                connections=args.connections,
                threads=args.threads,
                duration_s=args.duration,
            )
            cpu = _cpu_s(proc.pid) - cpu
    incidents, alerts = count_stored(store_url, scenario, tag, limit=r["accepted"] + 100_000)
    stored = (alerts or 0) if scenario == "storm" else incidents
    return WrkRow(
        checkout=name, store=store, scenario=scenario, round=rnd, connections=args.connections,
        duration_s=r["duration_us"] / 1e6, requests=r["requests"], accepted=r["accepted"], refused=r["refused"],
        socket_errors=r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"],
        p50_ms=r["p50_us"] / 1000, p90_ms=r["p90_us"] / 1000, p99_ms=r["p99_us"] / 1000,
        max_ms=r["max_us"] / 1000, stored=stored, load=(load_start, os.getloadavg()[0]),
        cpu_ms_per_alert=cpu * 1000 / max(1, r["accepted"]),
    )  # fmt: skip


def _serving(url: str, workers: int, timeout_s: float = 60.0) -> None:
    """Wait (with a deadline) until `/healthz` has answered 4 x `workers` times, each on a new connection.

    With `--workers N` uvicorn logs its address when the supervisor binds the socket, before the
    workers serve (wrk would meet "connection refused"). Not a proof that every worker serves: a
    worker still starting only makes the first second of the warm-up slower.
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    answered = 0
    while answered < workers * 4:
        try:
            with httpx.Client(timeout=2.0) as client:
                if client.get(f"{url}/healthz").status_code == 200:
                    answered += 1
                    continue
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the intake at {url} did not answer /healthz within {timeout_s:g} s")
        time.sleep(0.05)


def _cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used by the processes of group `pgid` (the intake and its workers)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) == pgid:  # pgrp; bench/procs.py starts each process as its own group
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


SPEEDUPS = ("httptools",)
"""Packages uvicorn uses when they are importable. A checkout whose constraints.txt does not pin one
runs with it hidden (an import of it fails), as it would in its own environment."""


def _environment(repo: Path, work: Path) -> dict[str, str]:
    pinned = (repo / "constraints.txt").read_text() if (repo / "constraints.txt").is_file() else ""
    hidden = [name for name in SPEEDUPS if f"\n{name}==" not in f"\n{pinned}"]
    env = dict(os.environ)
    if hidden:
        stubs = work / f"hide-{'-'.join(hidden)}"
        for name in hidden:
            (stubs / name).mkdir(parents=True, exist_ok=True)
            (stubs / name / "__init__.py").write_text(f"raise ImportError('{name} is hidden by the bench')\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(stubs), env.get("PYTHONPATH")]))
    return env


@contextmanager
def _profiled(out: Path | None, pid: int, tag: str, duration_s: float) -> Iterator[None]:
    """With `out`: py-spy records `pid` (collapsed stacks, `out/<tag>.txt`) while the block runs.

    `--gil`: only the thread holding the GIL is sampled, so the stacks are where the one core goes.
    """
    if out is None:
        yield
        return
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise FileNotFoundError("--profile needs py-spy (pip install py-spy)")
    out.mkdir(parents=True, exist_ok=True)
    argv = [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking", "--gil"]
    argv += ["--duration", str(int(duration_s) + 1), "--output", str(out / f"{tag}.txt")]
    recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            recorder.wait(duration_s + 30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait(10)


def _order(checkouts: list[tuple[str, Path]], rounds: int) -> list[tuple[int, tuple[str, Path]]]:
    """A B B A A B ...: each round reverses the previous order."""
    out: list[tuple[int, tuple[str, Path]]] = []
    for rnd in range(rounds):
        sides = checkouts if rnd % 2 == 0 else list(reversed(checkouts))
        out += [(rnd, side) for side in sides]
    return out


def run(args: argparse.Namespace, checkouts: list[tuple[str, Path]], work: Path) -> list[WrkRow]:
    rows: list[WrkRow] = []
    with ExitStack() as stack:
        pg = stack.enter_context(postgres_server(work, None)) if "postgresql" in args.stores else None
        for scenario in args.scenarios:
            for store in args.stores:
                for rnd, checkout in _order(checkouts, args.rounds):
                    if store == "sqlite":
                        url = f"sqlite:///{work / f'wrk-{checkout[0]}-{scenario}-{rnd}.sqlite3'}"
                    elif pg is not None:
                        side = re.sub(r"\W", "_", checkout[0].lower())
                        url = pg.create_database(f"wrk_{side}_{scenario}_{rnd}_{int(time.time()) % 10**6}")
                    else:
                        raise RuntimeError("PostgreSQL was not started")
                    row = _one(args, checkout, store, scenario, rnd, url, work)
                    print(
                        f"  {row.checkout} {row.store} {row.scenario} round {rnd}: {row.alerts_per_s:.0f} alerts/s, "
                        f"p99 {row.p99_ms:.1f} ms, {row.accepted} accepted, {row.stored} stored",
                        flush=True,
                    )
                    rows.append(row)
    return rows


def report(rows: list[WrkRow]) -> str:
    table = [
        [r.checkout, r.store, r.scenario, str(r.round), f"{r.alerts_per_s:,.0f}", f"{r.p50_ms:.1f}",
         f"{r.p90_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.max_ms:.0f}",
         f"{r.stored} / {r.accepted}" + ("" if r.lossless else f" (refused {r.refused}, socket errors {r.socket_errors})"),
         f"{r.cpu_ms_per_alert:.2f}", f"{r.load[0]:.1f} → {r.load[1]:.1f}"]
        for r in rows
    ]  # fmt: skip
    heads = ["checkout", "store", "scenario", "round", "alerts/s", "p50 ms", "p90 ms", "p99 ms", "max ms",
             "stored / 202", "intake CPU ms/alert", "load"]  # fmt: skip
    return markdown_table(heads, table)


def _checkout(text: str) -> tuple[str, Path]:
    name, _, path = text.rpartition("=")
    repo = Path(path).resolve()
    if not (repo / "intake" / "__main__.py").is_file():
        raise argparse.ArgumentTypeError(f"--checkout {text}: no intake/__main__.py under {repo}")
    return (name or repo.name, repo)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.intake_wrk", description=__doc__.splitlines()[0])
    p.add_argument("--checkout", type=_checkout, action="append", metavar="NAME=DIR",
                   help="a checkout whose intake to run (repeatable; default: this one)")  # fmt: skip
    p.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    p.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the machine has 2 cores)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of each measured run")
    p.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of distinct alerts before each, not counted"
    )
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--intake-workers", type=int, default=1, help="uvicorn worker processes of the intake")
    p.add_argument("--json", type=Path, help="also write every row to this file")
    p.add_argument(
        "--profile", type=Path, metavar="DIR", help="py-spy each measured run into DIR (collapsed)"
    )
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (process logs under logs/)")
    p.add_argument("--no-install", action="store_true", help="never install wrk (apt) when it is missing")
    args = p.parse_args(argv)
    if ensure_wrk(install=not args.no_install) is None:
        print("bench.intake_wrk: wrk is not installed (Debian/Ubuntu: apt-get install wrk); nothing measured",
              file=sys.stderr)  # fmt: skip
        return 2
    for name in ("connections", "threads", "rounds", "intake_workers"):
        if getattr(args, name) < 1:
            print(f"bench.intake_wrk: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if not 0 < args.duration <= 120:
        print("bench.intake_wrk: --duration must be within (0, 120] seconds", file=sys.stderr)
        return 2
    checkouts = args.checkout or [("this", REPO)]
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"wrk {args.connections} connections, {args.threads} thread(s), {args.duration:g} s per run "
          f"(+{args.warmup:g} s warm-up); load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    try:
        rows = run(args, checkouts, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(report(rows))
    if args.json:
        args.json.write_text(
            json.dumps([asdict(r) | {"alerts_per_s": r.alerts_per_s} for r in rows], indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
