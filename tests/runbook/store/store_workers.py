"""Code run in separate processes by the concurrency tests (forkserver children: nothing of the test
process is inherited but the arguments). Kept apart from the test modules so the children import only
this module, `runbook.store` and its models.
"""

from __future__ import annotations

from typing import Any

BASE = 10
"""Exit code = BASE + 2 * (won the claim) + (created the incident); anything else is a failure."""


def race(url: str, incident_id: str, barrier: Any, timeout_s: float) -> None:
    """Open the store from `url`, wait for every sibling, then race: claim one action, report one alert.

    Every process claims the same (incident, action, target) and reports an alert with the same
    dedupe key, at the same moment (the barrier).
    """
    import sys

    from runbook.models import Alert, AlertSource
    from runbook.severity import Severity
    from runbook.store import open_store

    store = open_store(url)
    try:
        alert = store.add_alert(Alert(source=AlertSource.DRILL, fingerprint="storm", name="ServiceDown"))
        barrier.wait(timeout_s)
        claim = store.claim_action(incident_id, "rollback", "prod/deployment/emotionscare")
        _, created = store.open_incident_for(alert, Severity.P1, "p1.service_unavailable", "service-down")
    finally:
        store.close()
    sys.exit(BASE + 2 * claim.won + created)
