"""Step 4 of the warm runner: execute one claimed run in the calling thread, as the child process would.

Usage::

    prewarm()                         # once: import the engines, check the API (what the first run would do)
    execute(flow, flow_run)           # in a worker thread; never raises
    flush()                           # at stop: send the batched logs and events

`execute` is what `python -m prefect.engine <id>` does after loading the flow: `run_flow(flow,
flow_run=flow_run)`; the engine proposes Running, runs the flow, proposes its final state. An error the
engine did not report (a parameter that does not fit the flow) is reported Crashed here, as
`FlowRunExecutor` does for a child process that exits non-zero.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

__all__ = ["execute", "flush", "prewarm", "report_crashed"]

log = logging.getLogger("flows.warm")


def prewarm() -> None:
    """Import and connect now what the first run would otherwise do on its time (engines, client)."""
    import prefect.flow_engine
    import prefect.task_engine  # noqa: F401
    from prefect.context import SyncClientContext

    with SyncClientContext():  # also checks the server's API version, once per process
        pass


def execute(flow: Any, flow_run: Any) -> None:
    """Run `flow_run` of `flow` to its end in this thread; its outcome is in its state, never raised."""
    from prefect.exceptions import Abort, Pause
    from prefect.flow_engine import flow_run_logger, run_flow

    run_logger = cast(logging.Logger, flow_run_logger(flow_run, flow))  # as prefect.engine passes it
    try:
        outcome = run_flow(flow, flow_run=flow_run, return_type="state", error_logger=run_logger)
        if asyncio.iscoroutine(outcome):  # an async flow: its own event loop in this thread
            outcome = asyncio.run(outcome)
        log.info("flow run %s (%s) ended: %s", flow_run.id, flow_run.name, getattr(outcome, "name", outcome))
    except (Abort, Pause) as exc:  # the server aborted it, or it paused/suspended: its state says so
        log.info("flow run %s left the runner: %s", flow_run.id, exc)
    except BaseException as exc:  # as when the child process exits non-zero: make sure it ends Crashed
        log.exception("flow run %s crashed in the warm runner", flow_run.id)
        report_crashed(flow_run, f"the flow run crashed in the warm runner: {type(exc).__name__}: {exc}")


def report_crashed(flow_run: Any, message: str) -> None:
    """Propose Crashed unless the run already ended (the engine reports most crashes itself)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import Abort
    from prefect.states import Crashed
    from prefect.utilities.engine import propose_state_sync

    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(flow_run.id).state
            if current is None or not current.is_final():
                propose_state_sync(client, Crashed(message=message[:2000]), flow_run_id=flow_run.id)
    except Abort:
        log.debug("flow run %s: the server refused Crashed (it has moved on)", flow_run.id)
    except Exception:
        log.exception("warm runner: could not report flow run %s as crashed", flow_run.id)


def flush() -> None:
    """Send what the runs logged and emitted before the process goes (both are batched)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        try:
            service.drain_all(timeout=5)
        except Exception:
            log.exception("warm runner: could not flush %s", service.__name__)
