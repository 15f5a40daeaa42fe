"""P1–P4: the guide's severity levels as data, and a classifier from observed signals to a level.

Usage::

    from runbook.models import Signals
    from runbook.severity import LEVELS, Severity, classify

    c = classify(Signals(error_rate_pct=6.0))
    c.severity, c.rule, c.reason
    # (Severity.P2, 'p2.error_rate_gt_5', 'Error rate > 5%: error rate is 6% (> 5%)')
    LEVELS[c.severity].response_time          # timedelta(minutes=15)

Guide: Quick Reference › Severity Levels (the table) and › Alert Mapping to Severity (the rules).
One module past 400 lines because it is one thing: the guide's mapping table and the one function
that reads it; most of its length is the rule table itself and the decisions written beside it.

Every rule has a stable id (`"p1.service_unavailable"`, `"p2.error_rate_gt_5"`, ...), shown to people
so they see *why* an incident got its level. Decisions where the guide is ambiguous (docs/severity.md
says the same, with the reasons):

- Boundaries follow the guide's words literally: "Error rate > 5%" is P2 and "Error rate 1-5%" is P3,
  so 5.0% is P3 and 5.1% is P2; 1.0% is P3 and 0.9% is P4 ("< 1%"). "P95 > 3s" is P2, "P95 1-3s" is
  P3: 3000 ms is P3, 3001 ms is P2, 1000 ms is P3, 999 ms is not P3 by latency. "Auth failures > 10%":
  10.0% is not P2, 10.1% is.
- The status-update example titled "[P1 - CRITICAL] High Error Rate (6%)" contradicts the mapping
  (6% is "> 5%": P2). The mapping is the rule table, the example shows a message format; we follow the
  mapping. A responder who knows more (all users affected, the database timing out) raises the level
  by reclassifying, or the database signal itself makes it P1.
- "Memory/CPU at 100%" is P1 only when sustained for 5 minutes or more (the P1 example says
  "for 5+ minutes"). 100% for a shorter or unknown time is P3 ("Degraded performance").
- "Service unavailable (500+ errors)" is the service answering 5xx (`server_errors_5xx`), its health
  endpoint unreachable (`service_reachable=False`), or every request failing (error rate 100%).
  "Login broken for all users" (a P1 example) is an authentication failure rate of 100%.
- The P3 example "Performance slightly slow (P95 900ms, target 1000ms)" is below the 1–3 s band, so
  latency alone does not make it P3; the `degraded_performance` signal (the mapping's "Degraded
  performance") does.
- "Cosmetic issues" are P4 (mapping) although the P3 section lists "Cosmetic bug"; a display bug that
  makes a feature wrong is `single_feature_broken` (P3).
- Several rules may match: the most severe level wins; among rules of that level, the first in
  `RULES` order decides, and all matching rule ids are kept in `Classification.matched`.
- When no rule of P1–P3 matches, the level is P4 (`"p4.default"`), with a reason saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from runbook.models import Signals

__all__ = [
    "LEVELS",
    "RULES",
    "Classification",
    "Level",
    "Rule",
    "Severity",
    "Thresholds",
    "classify",
    "most_severe",
]


class Severity(StrEnum):
    """The four levels. `P1` is the most severe; compare with `rank` or `more_severe_than`."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def rank(self) -> int:
        """1 for P1 (most severe) … 4 for P4."""
        return int(self.value[1])

    def more_severe_than(self, other: Severity) -> bool:
        """`Severity.P1.more_severe_than(Severity.P2)` is True."""
        return self.rank < other.rank

    def raised(self) -> Severity:
        """One level more severe (P2 → P1); P1 stays P1."""
        return Severity(f"P{max(1, self.rank - 1)}")


def most_severe(levels: Iterable[Severity]) -> Severity:
    """The most severe of `levels` (`ValueError` when empty)."""
    return min(levels, key=lambda s: s.rank)


@dataclass(frozen=True)
class Level:
    """One row of the guide's "Severity Levels" table, plus what the escalation means to the software."""

    severity: Severity
    name: str
    definition: str
    response_time: timedelta
    escalation: str
    page_pagerduty: bool
    escalate_to_lead: bool
    notify_team: bool
    add_to_backlog: bool

    @property
    def label(self) -> str:
        """`"P1 - Critical"`, as the guide writes it."""
        return f"{self.severity.value} - {self.name}"


# Guide: Quick Reference › Severity Levels.
LEVELS: dict[Severity, Level] = {
    Severity.P1: Level(
        severity=Severity.P1,
        name="Critical",
        definition="Service completely down, no users can access",
        response_time=timedelta(minutes=5),
        escalation="Immediate escalation to lead + PagerDuty",
        page_pagerduty=True,
        escalate_to_lead=True,
        notify_team=True,
        add_to_backlog=False,
    ),
    Severity.P2: Level(
        severity=Severity.P2,
        name="High",
        definition="Major feature broken, significant user impact",
        response_time=timedelta(minutes=15),
        escalation="Escalation to lead",
        page_pagerduty=False,
        escalate_to_lead=True,
        notify_team=True,
        add_to_backlog=False,
    ),
    Severity.P3: Level(
        severity=Severity.P3,
        name="Medium",
        definition="Feature partially broken, workaround available",
        response_time=timedelta(hours=1),
        escalation="Notify team, no escalation",
        page_pagerduty=False,
        escalate_to_lead=False,
        notify_team=True,
        add_to_backlog=False,
    ),
    Severity.P4: Level(
        severity=Severity.P4,
        name="Low",
        definition="Minor issue, no user impact",
        response_time=timedelta(hours=24),
        escalation="Add to backlog",
        page_pagerduty=False,
        escalate_to_lead=False,
        notify_team=False,
        add_to_backlog=True,
    ),
}


class Thresholds:
    """The numbers of "Alert Mapping to Severity" (and the 5-minute "sustained" of the P1 examples)."""

    ERROR_RATE_P2_ABOVE_PCT = 5.0  # "Error rate > 5%"
    ERROR_RATE_P3_FROM_PCT = 1.0  # "Error rate 1-5%" / "< 1%"
    P95_P2_ABOVE_MS = 3000.0  # "Response time P95 > 3s"
    P95_P3_FROM_MS = 1000.0  # "Response time P95 1-3s"
    AUTH_FAILURES_P2_ABOVE_PCT = 10.0  # "Auth failures > 10%"
    SATURATED_PCT = 100.0  # "Memory/CPU at 100%"
    SATURATED_FOR_P1_S = 300.0  # "for 5+ minutes"
    ALL_PCT = 100.0  # "all requests failing", "login broken for all users"


class Classification(BaseModel):
    """What `classify` decided: the level, the rule that decided it, and a sentence with the numbers."""

    model_config = ConfigDict(frozen=True)

    severity: Severity
    rule: str
    reason: str
    matched: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One line of the mapping: a stable id, its level, the guide's words, and a test on the signals.

    `explain` returns the sentence with the observed numbers, or None when the rule does not match.
    """

    id: str
    severity: Severity
    guide: str
    explain: Callable[[Signals], str | None]


def _pct(value: float) -> str:
    return f"{value:g}%"


def _rule(id: str, severity: Severity, guide: str) -> Callable[[Callable[[Signals], str | None]], Rule]:
    def wrap(fn: Callable[[Signals], str | None]) -> Rule:
        return Rule(id=id, severity=severity, guide=guide, explain=fn)

    return wrap


# --- P1 ---------------------------------------------------------------------------------------------------


@_rule("p1.service_unreachable", Severity.P1, "Service unavailable (500+ errors)")
def _service_unreachable(s: Signals) -> str | None:
    return "the service's health endpoint does not answer" if s.service_reachable is False else None


@_rule("p1.service_unavailable", Severity.P1, "Service unavailable (500+ errors)")
def _service_unavailable(s: Signals) -> str | None:
    return "the service answers with 5xx errors" if s.server_errors_5xx else None


@_rule("p1.database_connection_lost", Severity.P1, "Database connection lost")
def _database_lost(s: Signals) -> str | None:
    return "the database is unreachable" if s.database_reachable is False else None


@_rule("p1.all_requests_timing_out", Severity.P1, "All requests timing out")
def _all_timing_out(s: Signals) -> str | None:
    return "all requests are timing out" if s.all_requests_timing_out else None


@_rule("p1.all_requests_failing", Severity.P1, "Service unavailable (500+ errors)")
def _all_failing(s: Signals) -> str | None:
    if s.error_rate_pct is not None and s.error_rate_pct >= Thresholds.ALL_PCT:
        return f"all requests are failing (error rate {_pct(s.error_rate_pct)})"
    return None


@_rule("p1.login_broken_for_all", Severity.P1, "Service completely down, no users can access")
def _login_broken(s: Signals) -> str | None:
    if s.auth_failure_rate_pct is not None and s.auth_failure_rate_pct >= Thresholds.ALL_PCT:
        return f"login is broken for all users (auth failures {_pct(s.auth_failure_rate_pct)})"
    return None


def _saturated(pct: float | None, s: Signals, sustained: bool) -> bool:
    if pct is None or pct < Thresholds.SATURATED_PCT:
        return False
    long_enough = s.saturated_for_s is not None and s.saturated_for_s >= Thresholds.SATURATED_FOR_P1_S
    return long_enough == sustained


def _for(s: Signals) -> str:
    return "for an unknown time" if s.saturated_for_s is None else f"for {s.saturated_for_s:g} s"


@_rule("p1.cpu_at_100_sustained", Severity.P1, "Memory/CPU at 100% (for 5+ minutes)")
def _cpu_sustained(s: Signals) -> str | None:
    if _saturated(s.cpu_pct, s, sustained=True):
        return f"CPU at {_pct(s.cpu_pct or 0)} {_for(s)} (>= 300 s)"
    return None


@_rule("p1.memory_at_100_sustained", Severity.P1, "Memory/CPU at 100% (for 5+ minutes)")
def _memory_sustained(s: Signals) -> str | None:
    if _saturated(s.memory_pct, s, sustained=True):
        return f"memory at {_pct(s.memory_pct or 0)} {_for(s)} (>= 300 s)"
    return None


# --- P2 ---------------------------------------------------------------------------------------------------


@_rule("p2.error_rate_gt_5", Severity.P2, "Error rate > 5%")
def _error_rate_p2(s: Signals) -> str | None:
    if s.error_rate_pct is not None and s.error_rate_pct > Thresholds.ERROR_RATE_P2_ABOVE_PCT:
        return f"error rate is {_pct(s.error_rate_pct)} (> 5%)"
    return None


@_rule("p2.p95_gt_3s", Severity.P2, "Response time P95 > 3s")
def _p95_p2(s: Signals) -> str | None:
    if s.p95_latency_ms is not None and s.p95_latency_ms > Thresholds.P95_P2_ABOVE_MS:
        return f"P95 response time is {s.p95_latency_ms:g} ms (> 3000 ms)"
    return None


@_rule("p2.auth_failures_gt_10", Severity.P2, "Auth failures > 10%")
def _auth_p2(s: Signals) -> str | None:
    a = s.auth_failure_rate_pct
    if a is not None and a > Thresholds.AUTH_FAILURES_P2_ABOVE_PCT:
        return f"authentication failures are {_pct(a)} (> 10%)"
    return None


@_rule("p2.key_integration_down", Severity.P2, "Key API integration down")
def _integration_down(s: Signals) -> str | None:
    return "a key API integration is down" if s.key_integration_down else None


@_rule("p2.major_feature_broken", Severity.P2, "Major feature broken, significant user impact")
def _major_feature(s: Signals) -> str | None:
    return "a major feature is broken" if s.major_feature_broken else None


# --- P3 ---------------------------------------------------------------------------------------------------


@_rule("p3.error_rate_1_to_5", Severity.P3, "Error rate 1-5%")
def _error_rate_p3(s: Signals) -> str | None:
    e = s.error_rate_pct
    if e is not None and Thresholds.ERROR_RATE_P3_FROM_PCT <= e <= Thresholds.ERROR_RATE_P2_ABOVE_PCT:
        return f"error rate is {_pct(e)} (1-5%)"
    return None


@_rule("p3.p95_1s_to_3s", Severity.P3, "Response time P95 1-3s")
def _p95_p3(s: Signals) -> str | None:
    p = s.p95_latency_ms
    if p is not None and Thresholds.P95_P3_FROM_MS <= p <= Thresholds.P95_P2_ABOVE_MS:
        return f"P95 response time is {p:g} ms (1000-3000 ms)"
    return None


@_rule("p3.single_feature_broken", Severity.P3, "Single feature broken")
def _single_feature(s: Signals) -> str | None:
    return "a single feature is broken (workaround available)" if s.single_feature_broken else None


@_rule("p3.degraded_performance", Severity.P3, "Degraded performance")
def _degraded(s: Signals) -> str | None:
    return "performance is degraded" if s.degraded_performance else None


@_rule("p3.cpu_at_100_brief", Severity.P3, "Degraded performance (Memory/CPU at 100%, under 5 minutes)")
def _cpu_brief(s: Signals) -> str | None:
    if _saturated(s.cpu_pct, s, sustained=False):
        return f"CPU at {_pct(s.cpu_pct or 0)} {_for(s)} (P1 needs >= 300 s)"
    return None


@_rule("p3.memory_at_100_brief", Severity.P3, "Degraded performance (Memory/CPU at 100%, under 5 minutes)")
def _memory_brief(s: Signals) -> str | None:
    if _saturated(s.memory_pct, s, sustained=False):
        return f"memory at {_pct(s.memory_pct or 0)} {_for(s)} (P1 needs >= 300 s)"
    return None


# --- P4 ---------------------------------------------------------------------------------------------------


@_rule("p4.error_rate_lt_1", Severity.P4, "Error rate < 1%")
def _error_rate_p4(s: Signals) -> str | None:
    if s.error_rate_pct is not None and s.error_rate_pct < Thresholds.ERROR_RATE_P3_FROM_PCT:
        return f"error rate is {_pct(s.error_rate_pct)} (< 1%)"
    return None


@_rule("p4.non_critical_warning", Severity.P4, "Non-critical warnings")
def _warning(s: Signals) -> str | None:
    return "only non-critical warnings" if s.warning_only else None


@_rule("p4.cosmetic", Severity.P4, "Cosmetic issues")
def _cosmetic(s: Signals) -> str | None:
    return "a cosmetic issue only" if s.cosmetic_only else None


RULES: tuple[Rule, ...] = (
    _service_unreachable,
    _service_unavailable,
    _database_lost,
    _all_timing_out,
    _all_failing,
    _login_broken,
    _cpu_sustained,
    _memory_sustained,
    _error_rate_p2,
    _p95_p2,
    _auth_p2,
    _integration_down,
    _major_feature,
    _error_rate_p3,
    _p95_p3,
    _single_feature,
    _degraded,
    _cpu_brief,
    _memory_brief,
    _error_rate_p4,
    _warning,
    _cosmetic,
)
"""Every rule, most severe first. Order within a level is the tie-break."""

DEFAULT_RULE = "p4.default"


def classify(signals: Signals) -> Classification:
    """The level the guide's mapping gives `signals`, with the deciding rule and a reason.

    The most severe matching rule wins (ties: first in `RULES`). No P1–P3 rule matching gives P4.
    """
    hits = [(rule, why) for rule in RULES if (why := rule.explain(signals)) is not None]
    if not hits:
        return Classification(
            severity=Severity.P4,
            rule=DEFAULT_RULE,
            reason="Minor issue, no user impact: no P1-P3 rule matched the signals",
        )
    rule, why = min(hits, key=lambda hit: hit[0].severity.rank)  # min is stable: first of the level
    return Classification(
        severity=rule.severity,
        rule=rule.id,
        reason=f"{rule.guide}: {why}",
        matched=tuple(r.id for r, _ in hits),
    )
