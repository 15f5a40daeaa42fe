"""Classify an alert (severity) and route it (the runbook it calls for).

Usage::

    router = Router()                  # configured routes: Router(routes=config.routes())
    verdict = triage(alert, router)
    verdict.severity, verdict.rule, verdict.reason, verdict.runbook
    # (Severity.P1, 'p1.service_unreachable', "Service unavailable ...", 'service-down')

Severity (docs/intake.md, "Severity"): the guide's mapping of the observed signals
(`runbook.severity.classify(alert.signals)`) is a floor. An explicit `severity` (or `priority`) label —
`P1`..`P4`, `sev1`..`sev4`, and the words of `SEVERITY_WORDS` (`critical` → P1, `error`/`high` → P2,
`warning` → P3, `info` → P4) — may raise the level above it, never lower it: a `severity=warning` label
on a probe alert that says the service is unreachable is P1, not P3. When the label raises, the rule id
is `label.severity` and the reason says what the signals alone gave; otherwise the rule is the
mapping's and the reason notes the lower (or equal) label.

Runbook (guide: "Actions by Incident Type" and "Common P2 Issues"): an explicit `runbook` label naming
a known runbook wins; else the first matching route (configured routes first, then `DEFAULT_ROUTES`):
a route matches on the alert's name (regex, case-insensitive), on labels (regex per label), or on an
observed signal. Nothing matching: `None`, and the `respond` flow handles the incident by its level.

Bounded work: names and label values are matched on their first `MATCH_CHARS` (1,024) characters only,
and the default patterns are alternations of words (no nested quantifiers, no `.*` between groups), so
routing is linear in what it reads. Configured route patterns are the operator's; the same cap bounds
them, and docs/intake.md asks for patterns without nested quantifiers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from intake.alert import Alert
from intake.signals import MATCH_CHARS
from runbook.severity import Severity, classify

__all__ = [
    "DEFAULT_ROUTES",
    "KNOWN_RUNBOOKS",
    "SEVERITY_WORDS",
    "Route",
    "Router",
    "Verdict",
    "explicit_severity",
    "triage",
]

SEVERITY_WORDS: dict[str, Severity] = {
    **{f"p{n}": Severity(f"P{n}") for n in range(1, 5)},
    **{f"sev{n}": Severity(f"P{n}") for n in range(1, 5)},
    **{f"sev-{n}": Severity(f"P{n}") for n in range(1, 5)},
    "critical": Severity.P1,
    "page": Severity.P1,
    "fatal": Severity.P1,
    "high": Severity.P2,
    "error": Severity.P2,
    "major": Severity.P2,
    "medium": Severity.P3,
    "warning": Severity.P3,
    "minor": Severity.P3,
    "low": Severity.P4,
    "info": Severity.P4,
    "informational": Severity.P4,
    "none": Severity.P4,
}

KNOWN_RUNBOOKS: frozenset[str] = frozenset(
    {
        "service-down",
        "database-lost",
        "resource-exhaustion",
        "external-api-failure",
        "error-rate-spike",
        "performance-degradation",
        "feature-broken",
    }
)


@dataclass(frozen=True)
class Route:
    """Alerts matching this go to `runbook`. All given conditions must hold; at least one is given."""

    runbook: str
    name: re.Pattern[str] | None = None
    labels: Mapping[str, re.Pattern[str]] = field(default_factory=dict)
    signals: tuple[str, ...] = ()
    """Signal fields any one of which, observed with a value that means trouble, matches."""

    @classmethod
    def build(
        cls,
        runbook: str,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        signals: Iterable[str] = (),
    ) -> Route:
        """A route from plain strings (regexes compiled case-insensitive); `re.error` for a bad regex."""
        return cls(
            runbook=runbook,
            name=re.compile(name, re.I) if name else None,
            labels={k: re.compile(v, re.I) for k, v in (labels or {}).items()},
            signals=tuple(signals),
        )

    def matches(self, alert: Alert, observed: Mapping[str, Any] | None = None) -> bool:
        """Every condition the route has holds for `alert` (`observed`: its `signals.observed()`, if known).

        `Router.route` passes `observed` in, computed once for all its routes: it is a pydantic dump,
        and seven of the default routes read it.
        """
        checks: list[bool] = []
        if self.name is not None:
            checks.append(bool(self.name.search(alert.name[:MATCH_CHARS])))
        for key, pattern in self.labels.items():
            checks.append(key in alert.labels and bool(pattern.search(alert.labels[key][:MATCH_CHARS])))
        if self.signals:
            seen = alert.signals.observed() if observed is None else observed
            checks.append(any(_troubling(f, seen.get(f)) for f in self.signals))
        return bool(checks) and all(checks)


def _troubling(field: str, value: Any) -> bool:
    if value is None:
        return False
    if field in {"service_reachable", "database_reachable"}:
        return value is False
    if isinstance(value, bool):
        return value
    return True  # a number was observed: the alert is about it


# Order matters: the database and external-API names often also say "down".
DEFAULT_ROUTES: tuple[Route, ...] = (
    Route.build(
        "database-lost",
        name=r"database|\bdb|postgres|supabase|pgbouncer|connection.?pool",
    ),
    Route.build("database-lost", signals=("database_reachable",)),
    Route.build(
        "external-api-failure",
        name=r"external|upstream|third.?party|integration|hume|openai|spotify",
    ),
    Route.build("external-api-failure", signals=("key_integration_down",)),
    Route.build(
        "resource-exhaustion", name=r"cpu|memory|oom.?kill|\boom\b|out.?of.?memory|resource|saturat|throttl"
    ),
    Route.build("resource-exhaustion", signals=("cpu_pct", "memory_pct")),
    Route.build(
        "service-down",
        name=r"down|unreachable|unavailable|probe.?fail|health|5xx|crash|timing.?out|timeout",
    ),
    Route.build(
        "service-down", signals=("service_reachable", "server_errors_5xx", "all_requests_timing_out")
    ),
    Route.build("error-rate-spike", name=r"error.?rate|\bhigh.?errors?\b|\berrors\b"),
    Route.build("error-rate-spike", signals=("error_rate_pct",)),
    Route.build("performance-degradation", name=r"latency|p95|slow|response.?time"),
    Route.build("performance-degradation", signals=("p95_latency_ms", "degraded_performance")),
    Route.build("feature-broken", name=r"feature|broken|failing"),
    Route.build("feature-broken", signals=("single_feature_broken", "major_feature_broken")),
)


@dataclass(frozen=True)
class Router:
    """Configured routes, then the defaults; `known` are the runbook names an explicit label may name."""

    routes: tuple[Route, ...] = ()
    known: frozenset[str] = KNOWN_RUNBOOKS
    default: str | None = None

    def route(self, alert: Alert) -> str | None:
        explicit = alert.labels.get("runbook", "").strip()
        if explicit in self.known or any(explicit == r.runbook for r in self.routes):
            return explicit
        observed = alert.signals.observed()
        for candidate in (*self.routes, *DEFAULT_ROUTES):
            if candidate.matches(alert, observed):
                return candidate.runbook
        return self.default


@dataclass(frozen=True)
class Verdict:
    """What intake decided for one alert."""

    severity: Severity
    rule: str
    reason: str
    runbook: str | None


def explicit_severity(labels: Mapping[str, str]) -> tuple[str, Severity] | None:
    """`("severity", Severity.P1)` for `severity: critical`; None without a recognised label."""
    for key in ("severity", "priority"):
        word = labels.get(key, "").strip().lower()
        if word in SEVERITY_WORDS:
            return key, SEVERITY_WORDS[word]
    return None


def triage(alert: Alert, router: Router) -> Verdict:
    """Severity (the signals' level, raised by an explicit label, never lowered) and the runbook."""
    classification = classify(alert.signals)
    explicit = explicit_severity(alert.labels)
    runbook = router.route(alert)
    if explicit is None:
        return Verdict(classification.severity, classification.rule, classification.reason, runbook)
    key, labelled = explicit
    said = f"{key}={alert.labels[key][:40]!r}"
    if labelled.more_severe_than(classification.severity):
        reason = (
            f"explicit label {said} raises the level to {labelled.value} "
            f"(the signals alone: {classification.severity.value}, {classification.rule})"
        )
        return Verdict(labelled, f"label.{key}", reason, runbook)
    reason = (
        f"{classification.reason} (label {said} says {labelled.value}; a label may raise the level, "
        "never lower it)"
    )
    return Verdict(classification.severity, classification.rule, reason, runbook)
