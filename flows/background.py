"""Background work of a response (status updates, escalation timers), bounded by a stop event.

Usage::

    with background(StatusUpdates(...), EscalationWatch(...)):
        ...                                   # the response; the workers stop and are joined after it

Each worker runs in a thread with the flow run's context; one tick failing is logged and recorded in the
incident's timeline (`guarded`), and the loop goes on. When the record itself cannot be written (the
incident store is down), the failure is logged in one line and the loop still goes on: a worker never
dies with a traceback, and it stops when the response does.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from flows.flow_run import run_logger
from flows.outages import classify
from flows.record import Record

__all__ = ["Worker", "background", "guarded"]


class Worker(Protocol):
    name: str

    def run(self, stop: threading.Event) -> None: ...


@contextmanager
def background(*workers: Worker, join_timeout_s: float = 30.0) -> Iterator[threading.Event]:
    """Run `workers` in threads (with the flow run's context) until the block ends; then stop and join."""
    stop = threading.Event()
    threads = []
    for worker in workers:
        ctx = contextvars.copy_context()
        thread = threading.Thread(target=ctx.run, args=(worker.run, stop), name=worker.name, daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield stop
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=join_timeout_s)
            if thread.is_alive():
                run_logger("flows.background").error(
                    "%s did not stop within %.0fs", thread.name, join_timeout_s
                )


def guarded(what: str, rec: Record, step: Callable[[], object]) -> None:
    """One tick of a background loop: a failure is logged and recorded, and the loop goes on."""
    try:
        step()
    except Exception as exc:  # a tick must never end the loop (or the flow); the error is kept
        line = f"{what} failed: {type(exc).__name__}: {exc}"[:500]
        if classify(exc) is not None:  # a dependency down: one line; anything else keeps its traceback
            run_logger("flows.background").warning("%s", line)
        else:
            run_logger("flows.background").exception("%s failed", what)
        try:
            rec.note("error", line)
        except Exception as lost:  # the store (or the run's logger) down too: the log line above stays
            run_logger("flows.background").warning("%s not recorded: %s: %s", what, type(lost).__name__, lost)
