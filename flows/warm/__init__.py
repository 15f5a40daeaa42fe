"""Run chosen deployments' flow runs inside this process, in worker threads: no Python process per run.

Usage::

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.warm respond

    runner = WarmRunner([WarmTarget.of(respond, "respond")], limit=8, poll_s=0.25)
    with runner:
        runner.wait_ready(30)

Why: `flow.serve()` and workers start a new Python process per run, and that start (importing
Prefect and the flow, ~1 s here) is most of the 1.5 s from an alert to the flow's first line
(docs/latency.md). This runner keeps the interpreter warm and does what the child process would do,
in a thread, following `prefect.runner` (3.9.1) step by step, minus the process.

The package, by what each part does:

- `targets`: what may run here, and why only that: the deployments named (no default), never a
  drill, never a flow with `on_crashed` / `on_cancellation` hooks (refused, not run here: see there);
- `runner`: the loop: register, wake on the event stream or poll, claim when a slot is free, run,
  stop cleanly;
- `claiming`: the due-runs query and the claim (`Scheduled → Pending`, accepted once by the server,
  so a run is executed once however many runners watch it);
- `execution`: one run in a thread, as `python -m prefect.engine` runs it in a child;
- `cli`: `python -m flows.warm NAME...`.

What the process start bought and this gives up: a run already executing cannot be cancelled (a
thread cannot be killed: it runs to its end), and isolation (a flow that leaks memory, changes the
environment or crashes the interpreter takes the runner and the runs beside it along). Use it for
`respond`, which must start fast, and `flows.serve` or a worker for the rest.
"""

from flows.warm.claiming import claim
from flows.warm.cli import main
from flows.warm.runner import WarmRunner
from flows.warm.targets import NotWarmSafe, WarmTarget, refusal

__all__ = ["NotWarmSafe", "WarmRunner", "WarmTarget", "claim", "main", "refusal"]
