"""`python -m bench.serve_standin NAME`: serve the stand-in `respond` flow as `respond/NAME` with `serve()`.

Usage::

    PREFECT_RUNNER_POLL_FREQUENCY=1 python -m bench.serve_standin serve

The same call `python -m flows.serve` makes for the runbooks (`serve(*deployments, limit=8)`): a
Runner that polls every PREFECT_RUNNER_POLL_FREQUENCY seconds and starts each run in a new process.
When flows/respond.py is in the catalogue, `python -m flows.serve` itself is this path.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import serve

from bench.standin import respond


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0]:
        print("usage: python -m bench.serve_standin DEPLOYMENT-NAME", file=sys.stderr)
        return 2
    deployment: Any = respond.to_deployment(name=argv[0])  # sync here; typed as maybe-awaitable
    serve(deployment, limit=8)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
