"""Serve every deployment from this one process: no worker, no process start per run.

Usage::

    PREFECT_API_URL=http://127.0.0.1:4200/api PREFECT_RUNNER_POLL_FREQUENCY=1 python -m flows.serve
    python -m flows.serve --exclude respond     # respond is run by `python -m flows.warm respond`

The deployments have the names prefect.yaml gives them (`service-down/service-down`, …), so intake,
the UI and `run_deployment` find them whichever way they are run. `flow.serve` starts each run in a
child process within about a second of it being scheduled (docs/prefect-notes.md §1: 1.2–1.7 s
with a 1 s poll, against 7.6–9.4 s for a worker on Prefect's defaults).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from prefect import serve

from flows import catalogue
from flows.form import catalogue_services
from runbook.errors import SettingsError

__all__ = ["deployments", "main"]


def deployments(exclude: Sequence[str] = (), services: Sequence[str] | None = None) -> list[Any]:
    """One RunnerDeployment per entry of the catalogue (but `exclude`), as prefect.yaml deploys it, each
    form's `service` a choice of `services` (default: the service catalogue's, flows/form.py)."""
    known = {e.name for e in catalogue.entries()}
    unknown = sorted(set(exclude) - known)
    if unknown:
        raise ValueError(
            f"--exclude: unknown deployment(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    names = list(services) if services is not None else catalogue_services()
    return [entry.to_deployment(names) for entry in catalogue.entries() if entry.name not in exclude]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        metavar="NAME",
        help="deployments another process runs (e.g. respond, run by python -m flows.warm)",
    )
    parser.add_argument("--limit", type=int, default=8, help="runs at once (default 8)")
    args = parser.parse_args(argv)
    try:
        deps = deployments(args.exclude)
    except (ValueError, SettingsError) as exc:
        print(f"flows.serve: {exc}", file=sys.stderr)
        return 2
    from runbook.store import refuse_outdated_schema

    if refuse_outdated_schema("flows.serve"):
        return 2
    print(f"serving {len(deps)} deployments: {', '.join(sorted(d.name for d in deps))}", flush=True)
    serve(*deps, limit=args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
