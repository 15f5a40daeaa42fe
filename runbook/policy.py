"""The guide's decisions as plain functions: fix or roll back, recent deploy, deadlines, escalation.

Usage::

    from datetime import timedelta
    from runbook.policy import Triage, deployed_recently, escalation_due, triage

    triage(timedelta(minutes=3)).action          # Triage.ATTEMPT_FIX
    triage(None).action                          # Triage.ROLLBACK   (unknown cause)
    deployed_recently(deployed_at, now)          # within the last 15 minutes → roll back
    for step in escalation_due(incident, now):   # what should have happened by now
        claim = store.claim_action(incident.id, "escalate", step.key)   # exactly once
        ...

Decisions where the guide leaves room (docs/severity.md, "Policy", says the same):

- Decision matrix: "Fix time < 5 min → Attempt fix; > 5 min → ROLLBACK; Unknown cause → ROLLBACK".
  Exactly 5 minutes is a rollback: a fix is attempted only when it is expected to take *less* than the
  limit (P2: "Can fix in < 5 minutes?"; "Don't delay"). An unknown estimate is an unknown cause.
- Recent deploy: "If deployed in last 15 min → ROLLBACK". A deploy exactly 15 minutes old counts as
  recent (inclusive); a deploy time in the future (clock skew) counts as recent; no known deploy is not.
- Acknowledgement deadline: the level's response time (5 min, 15 min, 1 h, 24 h) from the incident's
  start. Reclassifying re-drives it: deadlines follow the current severity, from the same start.
- Escalation (guide: Escalation Contacts; Severity Levels' "Escalation" column):
  P1: on-call at once, through PagerDuty ("P1 … + PagerDuty"); not acknowledged by its 5-minute
  deadline → team lead, paged; still not acknowledged after two deadlines → DevOps.
  P2: on-call at once; not acknowledged by 15 minutes → team lead; after 30 → DevOps.
  P3: notify the team, no escalation. P4: add to the backlog, nobody is notified.
  A security incident also goes to the security contact at once, whatever its level.
  The P1 lead escalation happens at the deadline (the moment the response time is missed), not at
  t=0: an incident a person acknowledges in time does not wake the lead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from runbook.messages import human_duration
from runbook.models import Incident, IncidentStatus
from runbook.settings import SlackSettings
from runbook.severity import LEVELS, Severity

__all__ = [
    "BUDGETED",
    "ESCALATION",
    "FAILURE_RULES",
    "FIX_ESTIMATES",
    "FIX_TIME_LIMIT",
    "P2_DIAGNOSES",
    "P2_ERROR_RATE_PCT",
    "P2_SLOW_MS",
    "RECENT_DEPLOY_WINDOW",
    "Contact",
    "EscalationStep",
    "FailureKind",
    "FailureRule",
    "FixEstimate",
    "Observed",
    "Triage",
    "TriageDecision",
    "ack_deadline",
    "classify_failure",
    "contact_address",
    "deployed_recently",
    "escalation_chain",
    "escalation_due",
    "escalation_plan",
    "estimate_fix",
    "next_escalation",
    "p2_diagnosis",
    "target_key",
    "triage",
    "worse_after",
]

FIX_TIME_LIMIT = timedelta(minutes=5)
RECENT_DEPLOY_WINDOW = timedelta(minutes=15)


# --- Minute 2-3: Triage › Decision Matrix ----------------------------------------------------------------


class Triage(StrEnum):
    ATTEMPT_FIX = "attempt_fix"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class TriageDecision:
    """The matrix's answer with the line of the guide that decided it."""

    action: Triage
    rule: str
    reason: str


def triage(
    estimated_fix: timedelta | None, *, cause_known: bool = True, limit: timedelta = FIX_TIME_LIMIT
) -> TriageDecision:
    """Guide's Decision Matrix: fix if faster than `limit` (5 min); otherwise, or unknown, roll back."""
    minutes = limit.total_seconds() / 60
    if not cause_known or estimated_fix is None:
        return TriageDecision(Triage.ROLLBACK, "unknown_cause", "Unknown cause → ROLLBACK")
    est = estimated_fix.total_seconds() / 60
    if estimated_fix < limit:
        return TriageDecision(
            Triage.ATTEMPT_FIX, "fix_lt_limit", f"Fix time {est:g} min < {minutes:g} min → Attempt fix"
        )
    return TriageDecision(
        Triage.ROLLBACK, "fix_ge_limit", f"Fix time {est:g} min >= {minutes:g} min → ROLLBACK"
    )


# --- Minute 1-2: Assessment › "Determine if" ---------------------------------------------------------------


class FailureKind(StrEnum):
    """The guide's "Determine if": application crash, database, external API, infrastructure."""

    APPLICATION_CRASH = "application crash"
    DATABASE = "database issue"
    EXTERNAL_API = "external API failure"
    INFRASTRUCTURE = "infrastructure failure"
    NONE = "no failure observed"


@dataclass(frozen=True)
class Observed:
    """What the assessment saw, as the facts the failure rules read (each one a yes or no).

    `unreachable`: /health fails (timeout, refused, 5xx); `app_failing`: /api/health fails while /health
    answers; `app_database`: /api/health's answer names the database or its pool.
    """

    database_down: bool = False
    unreachable: bool = False
    app_failing: bool = False
    app_database: bool = False
    apis_down: bool = False
    saturated: bool = False


@dataclass(frozen=True)
class FailureRule:
    """When every fact in `when` holds, the failure is `kind` and `runbook` answers it; the first fact
    is the one the assessment gives as the reason."""

    when: tuple[str, ...]
    kind: FailureKind
    runbook: str


FAILURE_RULES: tuple[FailureRule, ...] = (
    FailureRule(("database_down",), FailureKind.DATABASE, "database-lost"),
    FailureRule(("unreachable", "saturated"), FailureKind.INFRASTRUCTURE, "resource-exhaustion"),
    FailureRule(("unreachable",), FailureKind.INFRASTRUCTURE, "service-down"),
    FailureRule(("app_failing", "app_database"), FailureKind.DATABASE, "database-lost"),
    FailureRule(("app_failing",), FailureKind.APPLICATION_CRASH, "service-down"),
    FailureRule(("apis_down",), FailureKind.EXTERNAL_API, "external-api-failure"),
    FailureRule(("saturated",), FailureKind.INFRASTRUCTURE, "resource-exhaustion"),
    FailureRule((), FailureKind.NONE, "service-down"),
)
"""The kind of failure by what was observed, in order: the first rule that matches decides. A database
that refuses `SELECT 1` comes first (whatever else fails, the database runbook answers it); an
unreachable service under resource pressure is an exhaustion; nothing observed still runs service-down
(it confirms the service healthy and changes nothing)."""


def classify_failure(observed: Observed) -> FailureRule:
    """The first of `FAILURE_RULES` whose facts all hold."""
    for rule in FAILURE_RULES:
        if all(getattr(observed, fact) for fact in rule.when):
            return rule
    raise LookupError("FAILURE_RULES has no catch-all rule")  # the last rule matches everything


@dataclass(frozen=True)
class FixEstimate:
    """How long the known fix of `kind` takes (`when`: an observed fact that must also hold)."""

    kind: FailureKind
    minutes: float
    fix: str
    when: str | None = None


FIX_ESTIMATES: tuple[FixEstimate, ...] = (
    FixEstimate(FailureKind.DATABASE, 2.0, "restart the connection pool"),
    FixEstimate(FailureKind.EXTERNAL_API, 1.0, "turn the feature flag off"),
    FixEstimate(FailureKind.INFRASTRUCTURE, 3.0, "scale up", when="saturated"),
    FixEstimate(FailureKind.APPLICATION_CRASH, 15.0, "hotfix the bad release", when="recent_deploy"),
)
"""The triage's fix-time estimates: the runbook's own first remedy. A crash after a recent deploy has a
known cause, but fixing the release in code (write, review, build, deploy) takes longer than the limit,
so the matrix rolls back. Anything else: no estimate, an unknown cause."""


def estimate_fix(kind: FailureKind, facts: dict[str, bool]) -> FixEstimate | None:
    """The first of `FIX_ESTIMATES` for `kind` whose condition holds in `facts`; None: cause unknown."""
    for estimate in FIX_ESTIMATES:
        if estimate.kind == kind and (estimate.when is None or facts.get(estimate.when, False)):
            return estimate
    return None


# --- P2 › Step 1: Assess: errors or slowness ---------------------------------------------------------------

P2_DIAGNOSES = ("error-rate-spike", "performance-degradation", "feature-broken")
P2_SLOW_MS = 3000.0
"""A route whose p95 is above this is slow (guide: Performance Degradation, P95 > 3s)."""
P2_ERROR_RATE_PCT = 5.0
"""An overall error rate above this is a spike (guide: Error Rate Spike, 5-10%)."""


def p2_diagnosis(runbook: str | None, error_rate_pct: float | None, slow_routes: int = 0) -> str:
    """Which of the Common P2 Issues to diagnose: the incident's own when it names one; slow routes with
    errors at or below the spike threshold → performance; errors above it → error-rate spike; otherwise
    (or without metrics, `error_rate_pct` None) → a broken feature."""
    if runbook in P2_DIAGNOSES:
        return str(runbook)
    if error_rate_pct is None:
        return "feature-broken"
    if slow_routes and error_rate_pct <= P2_ERROR_RATE_PCT:
        return "performance-degradation"
    if error_rate_pct > P2_ERROR_RATE_PCT:
        return "error-rate-spike"
    return "feature-broken"


# --- Service Completely Down › Step 3: "If deployed in last 15 min → ROLLBACK" ---------------------------


def deployed_recently(
    deployed_at: datetime | None, now: datetime, window: timedelta = RECENT_DEPLOY_WINDOW
) -> bool:
    """True when the last deploy happened within `window` before `now` (inclusive; future counts)."""
    if deployed_at is None:
        return False
    return now - deployed_at <= window


# --- Guards across incidents (docs/safety.md) ------------------------------------------------------------


def target_key(cluster: str, namespace: str, deployment: str) -> str:
    """The one name of a remediation target: its lease and its budget are keyed by it."""
    return f"{cluster}/{namespace}/deployment/{deployment}"


BUDGETED = {
    "rollback": "budget_rollbacks",
    "scale": "budget_scale_ups",
    "reset-db-pool": "budget_pool_resets",
}
"""Actions with a budget per target, and the `safety` setting that holds each one's limit per window."""


def worse_after(failing_before: int, failing_after: int, *, rollout_failed: bool = False) -> bool:
    """A remediation made things worse: more health probes fail after it than before, or its rollout failed."""
    return rollout_failed or failing_after > failing_before


# --- Deadlines and escalation ----------------------------------------------------------------------------


def ack_deadline(incident: Incident) -> datetime:
    """When a person must have acknowledged: start + the level's response time."""
    return incident.started_at + LEVELS[incident.severity].response_time


class Contact(StrEnum):
    """Who is told (guide: Escalation Contacts; P3 "Notify team"; P4 "Add to backlog")."""

    ONCALL = "on-call"
    LEAD = "team-lead"
    DEVOPS = "devops"
    SECURITY = "security"
    TEAM = "team"
    BACKLOG = "backlog"


@dataclass(frozen=True)
class EscalationStep:
    """One step of a chain: tell `contact` `after` the incident started.

    `unacknowledged_only`: the step is skipped once a person has acknowledged. `page`: also through
    PagerDuty (one dedup_key per incident, so a repeated trigger escalates, it does not open another).
    `key` is stable: use it as the target of `claim_action(incident_id, "escalate", step.key)`.
    """

    contact: Contact
    after: timedelta
    unacknowledged_only: bool
    page: bool
    reason: str

    @property
    def key(self) -> str:
        return f"{self.contact.value}@{int(self.after.total_seconds())}s"


def _ladder(severity: Severity, page: bool) -> tuple[EscalationStep, ...]:
    deadline = LEVELS[severity].response_time
    return (
        EscalationStep(Contact.ONCALL, timedelta(0), False, page, f"{severity} opened: on-call responds"),
        EscalationStep(
            Contact.LEAD,
            deadline,
            True,
            page,
            f"not acknowledged within {human_duration(deadline)}: team lead",
        ),
        EscalationStep(
            Contact.DEVOPS,
            2 * deadline,
            True,
            page,
            f"not acknowledged within {human_duration(2 * deadline)}: DevOps",
        ),
    )


ESCALATION: dict[Severity, tuple[EscalationStep, ...]] = {
    Severity.P1: _ladder(Severity.P1, page=True),
    Severity.P2: _ladder(Severity.P2, page=False),
    Severity.P3: (
        EscalationStep(Contact.TEAM, timedelta(0), False, False, "P3: notify team, no escalation"),
    ),
    Severity.P4: (EscalationStep(Contact.BACKLOG, timedelta(0), False, False, "P4: add to backlog"),),
}
"""The chains by level, as data (see the module docstring for the reasons)."""

SECURITY_STEP = EscalationStep(
    Contact.SECURITY, timedelta(0), False, False, "security incident: security team"
)


def escalation_chain(severity: Severity, *, security: bool = False) -> tuple[EscalationStep, ...]:
    """The steps for an incident of `severity` (the security contact first when `security`)."""
    chain = ESCALATION[severity]
    return (SECURITY_STEP, *chain) if security else chain


def escalation_plan(incident: Incident) -> list[tuple[EscalationStep, datetime]]:
    """Every step of the incident's chain with the time it falls due."""
    return [
        (step, incident.started_at + step.after)
        for step in escalation_chain(incident.severity, security=incident.security)
    ]


def _applies(incident: Incident, step: EscalationStep) -> bool:
    if incident.status == IncidentStatus.RESOLVED:
        return False
    return not (step.unacknowledged_only and incident.acknowledged_at is not None)


def escalation_due(incident: Incident, now: datetime) -> list[EscalationStep]:
    """Steps whose time has come by `now` and that still apply (open; unacknowledged where required).

    Returns every such step each time it is called: the caller makes each happen once by claiming
    `("escalate", step.key)` in the store.
    """
    return [step for step, due in escalation_plan(incident) if due <= now and _applies(incident, step)]


def next_escalation(incident: Incident, now: datetime) -> tuple[EscalationStep, datetime] | None:
    """The next step still to come after `now` and when, or None (a timer sleeps until then)."""
    pending = [(s, due) for s, due in escalation_plan(incident) if due > now and _applies(incident, s)]
    return min(pending, key=lambda p: p[1]) if pending else None


def contact_address(contact: Contact, slack: SlackSettings) -> str:
    """Where to reach `contact` on Slack (a handle or a channel), from settings."""
    return {
        Contact.ONCALL: slack.oncall_handle,
        Contact.LEAD: slack.lead_handle,
        Contact.DEVOPS: slack.devops_channel,
        Contact.SECURITY: slack.security_handle,
        Contact.TEAM: slack.incidents_channel,
        Contact.BACKLOG: "backlog",
    }[contact]
