"""A stand-in `respond` flow for the latency bench, until flows/respond.py exists.

Usage::

    from bench.standin import respond, MARK_DIR_ENV
    os.environ[MARK_DIR_ENV] = "/tmp/marks"     # where each run writes the time its first line ran
    respond.to_deployment(name="warm")           # same flow name and parameter shape as the real one

Same name (`respond`) and parameter shape (`{"incident_id": ...}`, what intake's dispatcher sends) as the
real flow. Its first line takes the wall-clock time; the run then writes it, with its process id and
flow run id, to `<mark dir>/<incident_id>.json`, so the bench can tell when the first line ran and
whether it ran in a new process (serve, worker) or in the warm runner's own process. Every execution
also appends one line to `<mark dir>/executions.jsonl`, so a run executed twice shows as two lines.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, runtime

__all__ = ["EXECUTIONS", "MARK_DIR_ENV", "mark_path", "respond"]

MARK_DIR_ENV = "BENCH_MARK_DIR"
"""Environment variable naming the folder the stand-in writes its marks to (unset: no mark)."""

EXECUTIONS = "executions.jsonl"
"""One JSON line per execution, in the mark dir (appends of one short line are atomic)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def mark_path(mark_dir: Path, incident_id: str) -> Path:
    """Where the run for `incident_id` writes its mark (the id made safe for a file name)."""
    return mark_dir / f"{_UNSAFE.sub('_', incident_id)}.json"


@flow(name="respond")
def respond(incident_id: str = "unknown") -> dict[str, Any]:
    """Stands for flows/respond.py: records when its first line ran, logs one line, returns."""
    first_line_at = time.time()  # the first line of the flow: what the bench measures
    mark_dir = os.environ.get(MARK_DIR_ENV)
    if mark_dir:
        mark = {
            "first_line_at": first_line_at,
            "pid": os.getpid(),
            "flow_run_id": str(runtime.flow_run.id),
            "incident_id": incident_id,
        }
        with open(Path(mark_dir) / EXECUTIONS, "a") as log:
            log.write(json.dumps(mark) + "\n")
        path = mark_path(Path(mark_dir), incident_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(mark))
        tmp.replace(path)  # the reader never sees half a mark
    get_run_logger().info("respond stand-in: incident %s", incident_id)
    return {"incident_id": incident_id, "first_line_at": first_line_at}
