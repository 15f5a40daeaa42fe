"""Asking a person inside a running flow: a typed form in the Prefect UI, a deadline, the guide's default.

`pause_flow_run(wait_for_input=Model, timeout=...)` shows `Model` as a form on the paused run. On
Prefect 3.9.1 an unanswered pause raises `FlowPauseTimeout` *and the server keeps the run Paused*
(docs/prefect-notes.md §3); a flow that goes on with the guide's default must put the run back
to Running itself, or the UI shows a paused run doing work and the final state is refused. `ask()`
does both, so a runbook reads: `answer = ask(Approval, timeout_s=120)`; `None` → apply the default.
"""

from __future__ import annotations

from typing import TypeVar

from prefect import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Running

M = TypeVar("M", bound=RunInput)


def ask(model: type[M], timeout_s: int, poll_interval_s: int = 1, key: str | None = None) -> M | None:
    """Pause for `model`'s form; the answer, or None when nobody answered within `timeout_s`."""
    try:
        return pause_flow_run(
            wait_for_input=model, timeout=max(1, int(timeout_s)), poll_interval=poll_interval_s, key=key
        )
    except FlowPauseTimeout:
        resume_running("no answer in time: the runbook applies its default")
        return None


def resume_running(why: str) -> None:
    """After a pause timed out the server still holds the run Paused: put it back to Running."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(ctx.flow_run.id, Running(message=why), force=True)
