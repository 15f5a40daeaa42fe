"""`python -m bench [intake|latency ...]`: run the benchmarks (all by default) and print their tables.

Usage::

    python -m bench                                    # both benches, full counts (~5 min on 2 cores)
    python -m bench intake --requests 2000 --concurrency 16 --stores sqlite postgresql
    python -m bench intake --client lean httpx --stores sqlite   # the bench's two load clients side by side
    python -m bench latency --n 20 --paths serve worker warm warm-poll
    python -m bench latency --api-url http://127.0.0.1:4200/api --n 5 --paths warm
    python -m bench intake latency --json results.json # also the raw figures, as JSON

Bad options print one line naming the option and exit 2. bench/RESULTS.md records the figures and the
exact commands that produced them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import alert_latency, intake_throughput

BENCHES = ("intake", "latency")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="Run the benchmarks (default: all).")
    p.add_argument("benches", nargs="*", metavar="BENCH", help="intake, latency (default: both)")
    p.add_argument("--json", type=Path, help="also write the raw figures to this file")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (process logs under logs/)")
    g = p.add_argument_group("intake")
    g.add_argument("--requests", type=int, default=2000)
    g.add_argument("--concurrency", type=int, default=16)
    g.add_argument("--warmup-requests", type=int, default=50)
    g.add_argument("--stores", nargs="+", default=list(intake_throughput.STORES))
    g.add_argument("--scenarios", nargs="+", default=list(intake_throughput.SCENARIOS))
    g.add_argument("--intake-workers", type=int, default=1)
    g.add_argument("--repeat", type=int, default=1, help="rounds, stores interleaved (default 1)")
    g.add_argument(
        "--client",
        nargs="+",
        default=["lean"],
        help="load client(s): lean (pre-encoded HTTP/1.1 on asyncio, default), httpx; several run in turn",
    )
    g = p.add_argument_group("latency")
    g.add_argument("--n", type=int, default=20, help="trials per path (after the warm-up)")
    g.add_argument("--warmup", type=int, default=1, help="warm-up trials per path, not counted")
    g.add_argument("--paths", nargs="+", default=list(alert_latency.PATHS), help="also: warm-and-serve")
    g.add_argument("--gap", type=float, nargs=2, default=[0.2, 1.2], metavar=("LOW", "HIGH"))
    g.add_argument("--seed", type=int, default=6)
    g.add_argument("--api-url", help="use this Prefect API instead of starting `prefect server start`")
    g.add_argument("--prefect-db", default="sqlite", help="the started server's database: sqlite, postgresql")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    benches = args.benches or list(BENCHES)
    unknown = [b for b in benches if b not in BENCHES]
    if unknown:
        print(f"bench: unknown bench {', '.join(unknown)}; known: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    try:
        intake_options = intake_throughput.Options(
            requests=args.requests,
            concurrency=args.concurrency,
            warmup=args.warmup_requests,
            stores=tuple(args.stores),
            scenarios=tuple(args.scenarios),
            intake_workers=args.intake_workers,
            repeat=args.repeat,
            clients=tuple(args.client),
        )
        latency_options = alert_latency.Options(
            n=args.n,
            warmup=args.warmup,
            paths=tuple(args.paths),
            gap_s=(args.gap[0], args.gap[1]),
            seed=args.seed,
            prefect_db=args.prefect_db,
        )
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(scratch))  # embedded PostgreSQL asks for one
    os.environ.setdefault("PREFECT_HOME", str(scratch / "prefect-home"))
    try:
        raw: dict[str, Any] = {"machine": _machine(), "argv": sys.argv}
        print(
            f"# python -m bench {' '.join(argv if argv is not None else sys.argv[1:])}\n# {raw['machine']}\n"
        )
        if "intake" in benches:
            started = time.monotonic()
            rows = intake_throughput.run(intake_options, workdir=_sub(args.keep, "intake"))
            print(intake_throughput.report(rows, intake_options))
            print(f"\n(intake bench: {time.monotonic() - started:.0f} s)\n", flush=True)
            raw["intake"] = [r.as_json() for r in rows]
        if "latency" in benches:
            started = time.monotonic()
            results = alert_latency.run(
                latency_options, api_url=args.api_url, workdir=_sub(args.keep, "latency")
            )
            print(alert_latency.report(results, latency_options))
            print(f"\n(latency bench: {time.monotonic() - started:.0f} s)\n", flush=True)
            raw["latency"] = [r.as_json() for r in results]
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"# load average at the end {load:.2f}")
        if args.json:
            args.json.write_text(json.dumps(raw, indent=1, default=str))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _sub(keep: Path | None, name: str) -> Path | None:
    if keep is None:
        return None
    path = keep / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average at start {load:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
