"""`python -m bench.scale` (`make scale-test`): the production topology on one machine, incidents
played with one process killed in each, the counts printed (and written to bench/RESULTS.md)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.scale.play import KILLS, Phase, play
from bench.scale.topology import Topology
from sandbox.supervise import StartFailed, Supervisor

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- scale-test:begin -->", "<!-- scale-test:end -->"


def table(phases: list[Phase], started_s: float, load: tuple[float, float]) -> str:
    rows = [
        "| killed mid-incident | process | alerts accepted / stored / lost | respond runs (live at once) "
        "| rollbacks | resolved | all-clear s | back after s | notes |",
        "|:--|:--|:--|:--|--:|:--|--:|--:|:--|",
    ]
    for p in phases:
        rows.append(
            f"| {p.kill} | {p.killed or '-'} | {p.alerts_accepted} / {p.alerts_stored} / {p.alerts_lost} "
            f"| {p.respond_runs} ({p.respond_live_max}) | {p.rollbacks} | {'yes' if p.resolved else 'NO'} "
            f"| {'-' if p.all_clear_s is None else f'{p.all_clear_s:.1f}'} "
            f"| {'-' if p.back_after_s is None else f'{p.back_after_s:.1f}'} | {'; '.join(p.notes)} |"
        )
    rows += ["", latency(phases)]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = f"{when}, start to end {started_s:.0f} s, load average {load[0]:.2f} → {load[1]:.2f}."
    return head + "\n\n" + "\n".join(rows) + "\n"


def latency(phases: list[Phase]) -> str:
    """Alert POST → ack in Slack, → PagerDuty triggered, → rollback at the Kubernetes API (the real respond)."""
    lines = [
        "| from the alert's POST, s | " + " | ".join(p.kill for p in phases) + " | median | max |",
        "|:--|" + "--:|" * (len(phases) + 2),
    ]
    for label, attr in (
        ("ack posted in Slack", "ack_s"),
        ("PagerDuty triggered", "page_s"),
        ("rollback answered by the Kubernetes API", "rollback_s"),
    ):
        values = [getattr(p, attr) for p in phases]
        known = sorted(v for v in values if v is not None)
        cells = ["-" if v is None else f"{v:.2f}" for v in values]
        summary = [f"{statistics.median(known):.2f}", f"{known[-1]:.2f}"] if known else ["-", "-"]
        lines.append(f"| {label} | " + " | ".join(cells + summary) + " |")
    return "\n".join(lines)


def write_results(path: Path, text: str) -> None:
    content = path.read_text()
    if BEGIN in content and END in content:
        before, _, rest = content.partition(BEGIN)
        _, _, after = rest.partition(END)
        content = f"{before}{BEGIN}\n{text}{END}{after}"
    else:
        content += f"\n{BEGIN}\n{text}{END}\n"
    path.write_text(content)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", nargs="+", default=list(KILLS), choices=KILLS)
    parser.add_argument(
        "--var", type=Path, default=None, help="folder for data and logs (default: a temp one)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write every phase as JSON")
    parser.add_argument(
        "--results", type=Path, default=None, help="replace the scale-test table in this file"
    )
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per incident")
    parser.add_argument(
        "--one-machine",
        action="store_true",
        help="make demo's shape instead: one Prefect server with its services, one warm runner, one intake "
        "(kill only `none`: measures the real response's latency)",
    )
    args = parser.parse_args(argv)
    var = args.var or Path(tempfile.mkdtemp(prefix="scale-test-"))
    var.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    started = time.monotonic()
    if args.one_machine and set(args.kills) != {"none"}:
        parser.error("--one-machine: only --kills none (repeat it for more incidents)")
    topo = Topology(var, ROOT, one_machine=args.one_machine)
    phases: list[Phase] = []
    try:
        with Supervisor(var / "logs", say=lambda m: print(f"[scale] {m}", flush=True)) as sup:
            topo.start(sup)
            print(f"[scale] topology ready in {time.monotonic() - started:.0f}s", flush=True)
            phases = play(topo, sup, tuple(args.kills), args.deadline)
    except StartFailed as exc:
        print(f"[scale] ✗ {exc}", file=sys.stderr)
        return 1
    finally:
        topo.stop()
    text = table(phases, time.monotonic() - started, (load0, os.getloadavg()[0]))
    print(text)
    if args.json:
        args.json.write_text(json.dumps([p.as_dict() for p in phases], indent=2))
    if args.results:
        write_results(args.results, text)
    ok = all(
        p.resolved and p.alerts_lost == 0 and p.rollbacks == 1 and p.respond_live_max <= 1 for p in phases
    )
    print(f"[scale] {'✓ every incident resolved' if ok else '✗ see the table'}; logs in {var / 'logs'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
