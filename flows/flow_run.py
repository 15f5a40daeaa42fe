"""The flow run we are in: its id, keys for its artifacts, its logger (one place for every flow).

Usage::

    flow_run_id()                              # "…uuid…" inside a flow run, else None
    artifact_key("drill-high-error-rate")      # a key Prefect accepts
    run_logger("flows.escalation").info(...)   # the run's logger; a plain one in a background thread
"""

from __future__ import annotations

import logging
import re

from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError

__all__ = ["artifact_key", "flow_run_id", "run_logger"]


def flow_run_id() -> str | None:
    """The id of the flow run we are in, or None outside one."""
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


def artifact_key(raw: str) -> str:
    """`raw` as a Prefect artifact key (lowercase letters, digits and dashes, at most 100)."""
    return re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:100]


def run_logger(fallback: str) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow run's logger; the logger called `fallback` outside a run (a background thread, a test)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(fallback)
