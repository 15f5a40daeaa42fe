"""Steps every flow shares, written once: recent deploys, switching a feature flag, rollback → wait →
verify, re-exported here from the modules that hold them.

Where they live: flows/deploy_correlation.py (`recent_deploys`, `known_good`), flows/rollback.py
(`rollback_and_verify`, `rollback_plan`, `look_again`: to a named known-good revision, never a blind
`undo`), flows/verify.py (after the change: wait, settle, read health, restore once if worse),
flows/evidence.py (`read_logs`, `sentry_evidence`); `switch_feature` is here.

Usage (inside a flow)::

    deploy = recent_deploys(rec, target, window_min=15)     # DeployCorrelation; a Kubernetes error is noted
    issues = sentry_evidence(rec, "assess")                 # Sentry's unresolved issues, top first, as evidence
    if deploy.can_roll_back:
        return rollback_and_verify(rec, target, deploy, ready_deadline_s=300, poll_interval_s=2)

Each source is optional: Kubernetes, Sentry or git failing becomes a note in the incident's timeline
(evidence that the source was out), never a failed flow, so an outage of a source cannot stop a response.
"""

from __future__ import annotations

from flows.deploy_correlation import DeployCorrelation, known_good, recent_deploys
from flows.evidence import read_logs, sentry_evidence
from flows.record import ActDone, Record
from flows.rollback import look_again, rollback_and_verify, rollback_plan
from kubeops.models import Workload
from tasks.feature_flags import FlagChange, set_feature_flag

__all__ = [
    "DeployCorrelation",
    "known_good",
    "look_again",
    "read_logs",
    "recent_deploys",
    "rollback_and_verify",
    "rollback_plan",
    "sentry_evidence",
    "switch_feature",
]


def switch_feature(rec: Record, target: Workload, flag: str, enabled: bool) -> ActDone[FlagChange]:
    """The guide's `kubectl set env deployment/X FLAG=true|false` as a claimed action (once per incident)."""
    value = "true" if enabled else "false"
    return rec.act(
        "enable-feature" if enabled else "disable-feature",
        f"{target.namespace}/deployment/{target.name}:{flag}",
        lambda: set_feature_flag(target, flag, enabled),
        f"kubectl set env deployment/{target.name} {flag}={value}",
    )
