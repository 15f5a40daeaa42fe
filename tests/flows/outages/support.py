"""What the outage tests share: `respond`'s options for a response that ends in seconds."""

from __future__ import annotations

from typing import Any

from respond.world import FAST_RUNBOOK

RESPOND_FAST: dict[str, Any] = dict(
    status_update_interval_s=0.3,
    escalation_poll_s=0.3,
    stability_window_s=0.5,
    handover_timeout_s=1,
    handover_poll_s=1,
    runbook_options=FAST_RUNBOOK,
)
