"""Guide: P1 › Timeline › Minute 2-3: Triage. Affected services, user impact, customer-facing or
internal, the fix-time estimate (`runbook.policy.FIX_ESTIMATES`) and the decision matrix
(`runbook.policy.triage`), with the runbook that carries the decision out.

Usage::

    decided = triage_incident(rec, incident, found, fix_limit=timedelta(minutes=5))
    comms.post("triage", decided.text())
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from flows.record import Record
from flows.response.act import runbooks
from flows.response.assess import Assessment
from runbook.models import Incident
from runbook.policy import FailureKind, Triage, TriageDecision, estimate_fix, triage
from tasks import runtime

__all__ = ["ALL_REQUESTS", "TriageResult", "triage_incident"]

ALL_REQUESTS = (FailureKind.APPLICATION_CRASH, FailureKind.INFRASTRUCTURE, FailureKind.DATABASE)
"""Failures that take every request down (the others: specific features)."""


class TriageResult(BaseModel):
    affected: str
    impact: str
    customer_facing: bool
    estimated_fix_min: float | None
    decision: str
    rule: str
    reason: str
    runbook: str

    def text(self) -> str:
        audience = "customer-facing" if self.customer_facing else "internal"
        return "\n".join(
            [
                "Triage (minute 2-3)",
                f"- Affected: {self.affected}",
                f"- Impact: {self.impact} ({audience})",
                f"- Decision: {self.decision.replace('_', ' ').upper()}: {self.reason}",
                f"- Action: {self.runbook} runbook",
            ]
        )

    def eta(self) -> str:
        """The status update's "Estimated fix": a rollback within the P1 timeline, else the estimate."""
        if self.decision == Triage.ROLLBACK:
            return "Estimated fix: 5 minutes (rollback)"
        if self.estimated_fix_min:
            return f"Estimated fix: {self.estimated_fix_min:g} minutes"
        return "Estimated fix: unknown"


def _impact(incident: Incident, found: Assessment) -> str:
    if found.kind in ALL_REQUESTS:
        return "All users affected"
    if found.kind == FailureKind.EXTERNAL_API:
        settings = runtime.settings()
        return f"Users of {', '.join(settings.api(n).feature for n in found.apis_down)} affected"
    if found.sentry_users:
        return f"{found.sentry_users} users affected (Sentry)"
    return "No user impact observed now"


def triage_incident(
    rec: Record, incident: Incident, found: Assessment, fix_limit: timedelta = timedelta(minutes=5)
) -> TriageResult:
    """Minute 2-3: affected services, impact, audience, the decision matrix and the runbook, with why."""
    settings = runtime.settings()
    services = sorted(
        {incident.service, *(a.service for a in runtime.store().list_alerts(incident_id=incident.id))}
    )
    affected = f"{', '.join(services)}: " + (
        "all requests" if found.kind in ALL_REQUESTS else "specific features"
    )
    known = estimate_fix(
        found.kind, {"saturated": found.infra.saturated, "recent_deploy": found.recent_deploy}
    )
    estimate = known.minutes if known is not None else None
    if found.kind == FailureKind.NONE:
        decision = TriageDecision(
            Triage.ATTEMPT_FIX, "healthy", "service healthy now: confirm, no change expected"
        )
    else:
        decision = triage(
            None if estimate is None else timedelta(minutes=estimate),
            cause_known=estimate is not None,
            limit=fix_limit,
        )
    known_runbooks = runbooks()
    chosen = incident.runbook if incident.runbook in known_runbooks else found.runbook
    if decision.action == Triage.ROLLBACK and incident.runbook not in known_runbooks:
        chosen = "service-down"  # the runbook that rolls back
    result = TriageResult(
        affected=affected,
        impact=_impact(incident, found),
        customer_facing=incident.service == settings.service.name,
        estimated_fix_min=estimate,
        decision=decision.action.value,
        rule=decision.rule,
        reason=decision.reason,
        runbook=chosen,
    )
    rec.note(
        "triage",
        f"{decision.action.value} ({decision.rule}): {decision.reason}; runbook {chosen}",
        evidence=result.model_dump(),
    )
    return result
