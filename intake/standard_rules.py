"""Signals that standard alerting rules carry without our own `signal` label: the value, what it measures,
and for how long.

Usage::

    rule_signals(RuleFacts(name="HighMemoryUsage", value_text="100", age_s=360.0))
    # {"memory_pct": 100.0, "saturated_for_s": 360.0}
    rule_signals(RuleFacts(name="ProbeFailure", expr="probe_success == 0"))
    # {"service_reachable": False}

Where the facts come from (docs/intake.md, "Signals from standard rules", with the upstream examples):

- **the value**: Prometheus rules template it into annotations (`value: "{{ $value }}"`,
  `current_value`, or a description line `VALUE = {{ $value }}` as the community rule sets write it);
  Grafana sends `values` (ref id -> number) and `valueString` (`[ var='B' labels={...} value=44.2 ]`).
  Grafana's condition ref (a threshold or math expression) is 1 or 0: when several refs are given, the
  first whose value is not exactly 0 or 1 is the metric, else the first;
- **what it measures**: the alert's name and the rule's expression (Alertmanager's `generatorURL`
  carries it as `g0.expr`), matched on common metric names: memory, CPU, error rate / ratio / 5xx,
  latency / duration / response time (p95, p99, mean), `probe_success == 0`, `up == 0`;
- **the unit**: a `%` suffix is a percentage; a value of at most 1 whose metric says `ratio` is a
  fraction (x100); latency in `ms` / `_ms` / `milliseconds` is milliseconds, in `s` / `seconds`
  (Prometheus's base unit) is seconds, and a bare number under 60 is taken as seconds, else milliseconds;
- **for how long**: the alert has been firing since `startsAt` (Prometheus sends the time the alert
  started firing, after its `for`), plus a `for` label or annotation when the rule states it (`5m`).
  This is how long CPU or memory has been saturated (`saturated_for_s`), which the guide's
  "Memory/CPU at 100%" needs (5 minutes or more: P1).

Only what is read with confidence is offered: a metric of what is *left* (`available`, `free`,
`remaining`) is not read as usage, and a value that does not parse is ignored. A reading that is wrong
low cannot lower a level (an explicit label is a floor beside it, intake/triage.py); one that is wrong
high raises it, which is the side the guide prefers. p99 is read as the P95 signal (an upper bound of
it): the level errs high, as a floor should.

Every match here is on at most `MATCH_CHARS` characters of each text, with word alternations only
(no nested quantifiers): linear in what it reads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

__all__ = [
    "MATCH_CHARS",
    "RuleFacts",
    "expr_from_generator_url",
    "parse_duration_s",
    "parse_number",
    "rule_signals",
    "saturated_for_s",
]

MATCH_CHARS = 1024
"""Only the first this-many characters of a name, expression or label value are matched: bounded work
per alert, whatever the body limit allows (intake/signals.py and intake/triage.py use it too)."""


def parse_number(value: Any) -> float | None:
    """A finite float from a label value, a JSON number or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip()[:64].rstrip("%"))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class RuleFacts:
    """What one alert says about the rule that fired it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] | None = None
    value_string: str = ""
    expr: str = ""
    age_s: float | None = None
    """Seconds since `startsAt` for a firing alert; None when unknown."""


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


_NUMBER = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(%|ms|s\b)?"
_VALUE_ONLY = _re(_NUMBER)
_VALUE_LINE = _re(r"\bvalue\s*[=:]\s*" + _NUMBER)
_VALUE_STRING_ITEM = _re(r"value=" + _NUMBER)
_LEFT = _re(r"avail|free|left|remaining|headroom")
_MEMORY = _re(r"memory|\bmem\b|mem_|_mem\b")
_CPU = _re(r"cpu")
_THROTTLED = _re(r"throttl")
_ERRORS = _re(r"error|5xx|fail")
_RATE = _re(r"rate|ratio|percent|pct")
_RATIO = _re(r"ratio|fraction")
_LATENCY = _re(r"latency|duration|response.?time")
_MILLIS = _re(r"millisecond|_ms\b|\bms\b")
_PROBE_DOWN = _re(r"probe_success\s*(==|<)\s*[01]\b")
_UP_DOWN = _re(r"(^|[^\w:])up\s*(\{[^{}]{0,512}\})?\s*==\s*0\b")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration_s(text: str) -> float | None:
    """Seconds of a Prometheus duration (`5m`, `1h30m`, `90s`); None when it is not one."""
    text = text.strip()[:32]
    if not text:
        return None
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def expr_from_generator_url(url: str) -> str:
    """The rule's expression from Prometheus's `generatorURL` (`/graph?g0.expr=...`); `""` without one."""
    start = url.find("g0.expr=", 0, 4 * MATCH_CHARS)
    if start < 0:
        return ""
    start += len("g0.expr=")
    end = url.find("&", start, start + 4 * MATCH_CHARS)
    return unquote_plus(url[start : end if end >= 0 else start + 4 * MATCH_CHARS])[:MATCH_CHARS]


def _value(facts: RuleFacts) -> tuple[float, str] | None:
    """The rule's value and its unit suffix (`%`, `ms`, `s` or `""`), from the first place that has one."""
    for key in ("value", "current_value", "$value"):
        raw = facts.annotations.get(key)
        if raw is not None:
            match = _VALUE_ONLY.fullmatch(raw.strip()[:64])
            if match and (number := parse_number(match.group(1))) is not None:
                return number, (match.group(2) or "").lower()
    description = facts.annotations.get("description", "")[:MATCH_CHARS]
    match = _VALUE_LINE.search(description)
    if match and (number := parse_number(match.group(1))) is not None:
        return number, (match.group(2) or "").lower()
    numbers = [n for v in (facts.values or {}).values() if (n := parse_number(v)) is not None]
    if not numbers:
        items = _VALUE_STRING_ITEM.finditer(facts.value_string[:MATCH_CHARS])
        numbers = [n for m in items if (n := parse_number(m.group(1))) is not None]
    if numbers:
        metric = (
            next((n for n in numbers if n not in (0.0, 1.0)), numbers[0]) if len(numbers) > 1 else numbers[0]
        )
        return metric, ""
    return None


def _percent(value: float, unit: str, text: str) -> float:
    if unit == "%":
        return value
    return value * 100.0 if value <= 1.0 and _RATIO.search(text) else value


def _millis(value: float, unit: str, text: str) -> float:
    if unit == "ms" or (unit != "s" and _MILLIS.search(text)):
        return value
    if unit == "s" or "second" in text.lower() or value < 60.0:
        return value * 1000.0
    return value


def rule_signals(facts: RuleFacts) -> dict[str, float | bool]:
    """The signals `facts` carry (see the module docstring); empty when nothing is read with confidence."""
    text = f"{facts.name[:MATCH_CHARS]} {facts.expr[:MATCH_CHARS]}"
    found: dict[str, float | bool] = {}
    if _PROBE_DOWN.search(facts.expr[:MATCH_CHARS]) or _UP_DOWN.search(facts.expr[:MATCH_CHARS]):
        found["service_reachable"] = False
    read = _value(facts)
    if read is not None and not _LEFT.search(text):
        value, unit = read
        if _MEMORY.search(text):
            found["memory_pct"] = _percent(value, unit, text)
        elif _CPU.search(text) and not _THROTTLED.search(text):
            found["cpu_pct"] = _percent(value, unit, text)
        elif _ERRORS.search(text) and _RATE.search(text):
            found["error_rate_pct"] = _percent(value, unit, text)
        elif _LATENCY.search(text):
            found["p95_latency_ms"] = _millis(value, unit, text)
    return found


def saturated_for_s(facts: RuleFacts) -> float | None:
    """How long the alert's condition has held: its firing age plus the rule's `for`, when known."""
    if facts.age_s is None:
        return None
    pending = next(
        (
            s
            for key in ("for", "for_duration")
            for src in (facts.labels, facts.annotations)
            if (s := parse_duration_s(src.get(key, ""))) is not None
        ),
        0.0,
    )
    return max(0.0, facts.age_s) + pending
