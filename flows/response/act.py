"""Guide: P1 › Minute 3-5: Action, and P2 › Step 3: the runbook flow, run as a subflow of `respond`.

Usage::

    result = run_runbook(rec, "service-down", incident, {"settle_s": 0}, dry_run=False)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from flows import catalogue
from flows.record import Record
from runbook.models import Evidence, Incident, RunbookResult

__all__ = ["run_runbook", "runbooks"]


def runbooks() -> dict[str, Callable[..., Any]]:
    """The runbook flows respond may run (the catalogue's entries tagged `runbook`), by name."""
    return {e.name: e.flow for e in catalogue.entries() if "runbook" in e.tags}


def run_runbook(
    rec: Record, name: str, incident: Incident, options: dict[str, Any], dry_run: bool
) -> RunbookResult:
    """Call the runbook flow as a subflow, with the options it takes (the others are noted, not passed)."""
    runbook = runbooks()[name]
    accepted = set(inspect.signature(runbook.fn).parameters)  # type: ignore[attr-defined]
    passed = {k: v for k, v in options.items() if k in accepted and k not in ("incident", "dry_run")}
    ignored = sorted(set(options) - set(passed))
    if ignored:
        rec.note("act", f"{name} takes no {', '.join(ignored)}: not passed")
    rec.note("act", f"running {name}" + (f" with {passed}" if passed else ""))
    result: RunbookResult = runbook(incident_id=incident.id, dry_run=dry_run, **passed)
    rec.add_evidence(
        Evidence(
            kind="runbook",
            title=f"{name}: {result.outcome.value}",
            content=result.summary,
            data={"runbook": name},
        )
    )
    for item in result.evidence:
        if item.kind == "follow-up":
            rec.add_evidence(item)
    return result
