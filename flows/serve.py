"""Serve every deployment from this one process: no worker, no process start per run.

Usage::

    PREFECT_API_URL=http://127.0.0.1:4200/api PREFECT_RUNNER_POLL_FREQUENCY=1 python -m flows.serve

The deployments have the names prefect.yaml gives them (`service-down/service-down`, …), so intake,
the UI and `run_deployment` find them whichever way they are run. `flow.serve` starts each run in a
child process within about a second of it being scheduled (../shared/reference/prefect.md: 1.2–1.7 s
with a 1 s poll, against 7.6–9.4 s for a worker on Prefect's defaults).
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import serve

from flows import catalogue

__all__ = ["deployments", "main"]


def deployments() -> list[Any]:
    """One RunnerDeployment per entry of the catalogue, described and tagged as in prefect.yaml."""
    return [
        entry.flow.to_deployment(
            name=entry.name,
            description=entry.description,
            tags=list(entry.tags),
            enforce_parameter_schema=True,
            **({"cron": entry.cron, "parameters": entry.parameters} if entry.cron else {}),
        )
        for entry in catalogue.entries()
    ]


def main() -> int:
    deps = deployments()
    print(f"serving {len(deps)} deployments: {', '.join(sorted(d.name for d in deps))}", flush=True)
    serve(*deps, limit=8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
