"""What the outage tests share: `respond`'s options for a response that ends in seconds, the deadline no
outage run may reach, and the incident's `outage` timeline entries."""

from __future__ import annotations

from typing import Any

from respond.world import FAST_RUNBOOK

from tasks import runtime

DEADLINE_S = 60.0  # a run with its API gone for a while ends well within this: no hang

RESPOND_FAST: dict[str, Any] = dict(
    status_update_interval_s=0.3,
    escalation_poll_s=0.3,
    stability_window_s=0.5,
    handover_timeout_s=1,
    handover_poll_s=1,
    runbook_options=FAST_RUNBOOK,
)


def outage_entries(incident_id: str) -> list[Any]:
    return [e for e in runtime.store().timeline(incident_id) if e.kind == "outage"]
