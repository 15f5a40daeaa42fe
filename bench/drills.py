"""`python -m bench.drills`: run the four drills against a fresh sandbox and print their figures (MTTR).

Usage::

    python -m bench.drills                    # the guide's timings (settle 30 s, polls every 30 s, ...)
    python -m bench.drills --fast             # every runbook wait at (near) zero: the machinery alone
    python -m bench.drills --json drills.json # also the raw drill results

Each drill runs as in production (flows/drills.py, `via="runbook"`), against an in-process sandbox
world and a Prefect test server started here; nothing is left running afterwards. The table gives, per
scenario, the time from the fault to detection, acknowledgement, mitigation and verified recovery, and
the MTTR (fault injected → verified recovery). The figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

# Runbook parameters for --fast: every wait the guide prescribes set to (nearly) nothing.
FAST: dict[str, dict[str, Any]] = {
    "database-failure": {"verify_deadline_s": 1, "poll_interval_s": 0.05},
    "high-error-rate": {"settle_s": 0, "poll_interval_s": 0.05},
    "performance-degradation": {"samples": 1, "sample_interval_s": 0, "window_s": 60},
    "external-api-failure": {"poll_interval_s": 0.05},
}


def run(fast: bool, outage_s: float) -> list[Any]:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from flows.drills import DRILLS
    from sandbox.testing import running_world
    from tasks.drill_targets import WorldTarget, register_target

    results = []
    with (
        prefect_test_harness(server_startup_timeout=60),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
        running_world(leak_interval_s=0) as world,
    ):
        unregister = register_target(WorldTarget(world))
        try:
            for key, drill in DRILLS.items():
                options: dict[str, Any] = {"post_to_slack": False, "poll_interval_s": 0.2 if fast else 1.0}
                if fast:
                    options["runbook_parameters"] = FAST[key]
                if key == "external-api-failure":
                    options["outage_s"] = outage_s
                started = time.monotonic()
                result = drill(**options)
                print(f"{key}: {result.status.value} in {time.monotonic() - started:.1f} s", flush=True)
                results.append(result)
        finally:
            unregister()
    return results


def table(results: list[Any], fast: bool, outage_s: float) -> str:
    from runbook.drills import Step, human_s

    lines = [
        f"## Drills in the sandbox ({'runbook waits at zero' if fast else 'the guide timings'})",
        "",
        f"`python -m bench.drills{' --fast' if fast else ''}` on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}); external API outage {outage_s:g} s.",
        "",
        "| scenario | result | detect | acknowledge | mitigate | recover | MTTR |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = []
        for step in (Step.DETECT, Step.ACKNOWLEDGE, Step.MITIGATE, Step.RECOVER):
            s = r.step(step)
            cells.append(f"{human_s(s.elapsed_s if s else None)} ({s.origin})" if s else "-")
        lines.append(f"| {r.scenario} | {r.status.value} | {' | '.join(cells)} | {human_s(r.mttr_s)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.drills", description="Run the four drills, print MTTR.")
    p.add_argument("--fast", action="store_true", help="runbook waits at (near) zero")
    p.add_argument("--outage-s", type=float, default=None, help="external API outage (default 120, --fast 1)")
    p.add_argument("--json", type=Path, help="also write the drill results to this file")
    args = p.parse_args(argv)
    outage_s = args.outage_s if args.outage_s is not None else (1.0 if args.fast else 120.0)
    if outage_s <= 0:
        print("--outage-s: must be > 0", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-drills-") as home:
        os.environ.setdefault("PREFECT_HOME", home)
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        results = run(args.fast, outage_s)
    print(table(results, args.fast, outage_s))
    if args.json:
        args.json.write_text(json.dumps([r.model_dump(mode="json") for r in results], indent=1))
    return 0 if all(r.status.value == "passed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
