"""Signals from what an alert carries: labels, annotations, a Grafana `values` map, the alert's name.

Usage::

    signals = extract_signals(name="HighErrorRate", labels={"signal": "error_rate_pct"},
                              annotations={"value": "7.2"})
    signals.error_rate_pct          # 7.2

The conventions (docs/intake.md, "Signals"), first match per field wins, later sources only fill gaps:

1. A label or annotation named like a `Signals` field (`error_rate_pct: "7.2"`, `database_reachable:
   "false"`) or one of its aliases (`error_rate`, `p95_ms`, `cpu`, `memory`, ...; `error_ratio: "0.072"`
   is a fraction and `p95_latency_s` is in seconds, both converted).
2. A `signal` label naming a field, with the number in the `value` annotation (Prometheus rules write
   `value: "{{ $value }}"`) or else in Grafana's `values` (the ref named by a `signal_ref` label, or the
   first ref).
3. What a standard rule carries without our `signal` label (intake/standard_rules.py): the value
   (`value` annotation, `VALUE = ...` in the description, Grafana's `values` / `valueString`), the
   metric the name or the rule's expression names (memory, CPU, error rate, latency,
   `probe_success == 0`, `up == 0`), its unit.
4. The alert's name, for the yes/no signals only: "ServiceDown" says the service is unreachable,
   "DatabaseConnectionLost" that the database is, "Hume API down" that a key integration is down
   (`NAME_SIGNALS`, a table).

CPU or memory observed without `saturated_for_s`: the alert's firing age (`startsAt` to now) plus the
rule's `for` when given, so "memory at 100% for 6 minutes" is P1 without any label of ours.

Values that do not parse (a label `cpu: "high"`) are ignored: a label convention is not a schema, and
an alert is never refused for one; the generic schema's `signals` object is validated strictly instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from intake.alert import Signals
from intake.standard_rules import MATCH_CHARS, RuleFacts, parse_number, rule_signals, saturated_for_s

__all__ = [
    "ALIASES",
    "MATCH_CHARS",
    "NAME_SIGNALS",
    "extract_signals",
    "name_says",
    "parse_bool",
    "parse_number",
]

_NUMBER_FIELDS = {
    name for name, info in Signals.model_fields.items() if info.annotation in (float, float | None)
}
_BOOL_FIELDS = set(Signals.model_fields) - _NUMBER_FIELDS

# alias -> (field, factor applied to the number)
ALIASES: dict[str, tuple[str, float]] = {
    "error_rate": ("error_rate_pct", 1.0),
    "error_rate_percent": ("error_rate_pct", 1.0),
    "error_ratio": ("error_rate_pct", 100.0),
    "p95": ("p95_latency_ms", 1.0),
    "p95_ms": ("p95_latency_ms", 1.0),
    "latency_p95_ms": ("p95_latency_ms", 1.0),
    "p95_latency_s": ("p95_latency_ms", 1000.0),
    "p95_seconds": ("p95_latency_ms", 1000.0),
    "auth_failure_rate": ("auth_failure_rate_pct", 1.0),
    "auth_failure_ratio": ("auth_failure_rate_pct", 100.0),
    "cpu": ("cpu_pct", 1.0),
    "cpu_percent": ("cpu_pct", 1.0),
    "memory": ("memory_pct", 1.0),
    "memory_percent": ("memory_pct", 1.0),
    "mem_pct": ("memory_pct", 1.0),
    "saturated_for": ("saturated_for_s", 1.0),
}


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


# Guide: Alert Mapping to Severity. Name patterns for the yes/no signals (case-insensitive, searched):
# (words, then-words or None, implied). "words, later then-words" is two searches, the second starting
# where the first match ended: linear, where one regex `(words).*(then-words)` backtracks quadratically
# (a 21 KB name of repeated "service" took seconds).
NAME_SIGNALS: tuple[tuple[re.Pattern[str], re.Pattern[str] | None, dict[str, bool]], ...] = (
    (
        _words(r"database|\bdb|postgres|supabase|pgbouncer"),
        _words(r"down|lost|unreachable|refused|fail"),
        {"database_reachable": False},
    ),
    (
        _words(r"external|upstream|third.?party|integration|hume|openai|spotify"),
        _words(r"down|fail|unavailable"),
        {"key_integration_down": True},
    ),
    (_words(r"all.?requests.?tim"), None, {"all_requests_timing_out": True}),
    (_words(r"5xx|server.?errors|http.?50\d|service.?unavailable"), None, {"server_errors_5xx": True}),
    (
        _words(r"service|instance|target|probe|endpoint|health|site|app"),
        _words(r"down|fail|unreachable"),
        {"service_reachable": False},
    ),
)


def name_says(pattern: re.Pattern[str], then: re.Pattern[str] | None, name: str) -> bool:
    """`pattern` somewhere in `name` (its first `MATCH_CHARS`), and `then` somewhere after it."""
    text = name[:MATCH_CHARS]
    first = pattern.search(text)
    if first is None:
        return False
    return then is None or then.search(text, first.end()) is not None


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def parse_bool(value: Any) -> bool | None:
    """True/False from `true`/`false`/`yes`/`no`/`1`/`0`/`on`/`off` (any case) or a JSON bool; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return None


def _field_value(key: str, raw: Any) -> tuple[str, float | bool] | None:
    key = key.strip().lower()
    factor = 1.0
    if key in ALIASES:
        key, factor = ALIASES[key]
    if key in _NUMBER_FIELDS:
        number = parse_number(raw)
        return None if number is None else (key, number * factor)
    if key in _BOOL_FIELDS:
        flag = parse_bool(raw)
        return None if flag is None else (key, flag)
    return None


def extract_signals(
    *,
    name: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    values: Mapping[str, Any] | None = None,
    value_string: str = "",
    expr: str = "",
    age_s: float | None = None,
) -> Signals:
    """`Signals` from one alert's parts; see the module docstring for the conventions and their order.

    `expr` is the rule's expression when the source gives it (Alertmanager's `generatorURL`), `age_s`
    the seconds since the alert started firing, `value_string` Grafana's `valueString`.
    """
    found: dict[str, float | bool] = {}

    def offer(field: str, value: float | bool) -> None:
        found.setdefault(field, value)

    # 1. fields and aliases named directly
    for source in (labels, annotations):
        for key, raw in source.items():
            hit = _field_value(key, raw)
            if hit is not None:
                offer(*hit)

    # 2. `signal` label + value annotation, or Grafana values
    named = labels.get("signal") or annotations.get("signal")
    if named:
        given: Any = annotations.get("value")
        if given is None and values:
            ref = labels.get("signal_ref") or annotations.get("signal_ref")
            given = values.get(ref) if ref else next(iter(values.values()))
        if given is not None:
            hit = _field_value(named, given)
            if hit is not None:
                offer(*hit)

    # 3. what a standard rule carries: its value, the metric its name or expression names, its age
    facts = RuleFacts(name, labels, annotations, values, value_string, expr, age_s)
    for field, value in rule_signals(facts).items():
        offer(field, value)

    # 4. the alert's name, for yes/no signals
    for pattern, then, implied in NAME_SIGNALS:
        if name_says(pattern, then, name):
            for field, flag in implied.items():
                offer(field, flag)

    # CPU or memory observed without a duration: how long the alert has been firing
    if ("cpu_pct" in found or "memory_pct" in found) and (held := saturated_for_s(facts)) is not None:
        offer("saturated_for_s", held)

    return _valid_signals(found)


def _valid_signals(found: dict[str, float | bool]) -> Signals:
    """`Signals` from the values that pass its bounds (an error rate of 150% is dropped, not fatal)."""
    try:
        return Signals(**found)  # the usual case: all in bounds, one validation
    except ValidationError:
        pass
    kept: dict[str, float | bool] = {}
    for field, value in found.items():
        try:
            Signals(**{field: value})
        except ValidationError:
            continue
        kept[field] = value
    return Signals(**kept)
