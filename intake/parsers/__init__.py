"""Parsers: one source's webhook body in, normalised `Alert`s out.

Usage::

    from intake.parsers import SOURCES, ParseContext, parse

    alerts = parse("alertmanager", body_bytes, ParseContext())            # list[Alert]
    alerts = parse("sentry", body_bytes, ctx, sentry_resource="event_alert")

Errors, each with a `message` naming what is wrong (the HTTP layer answers them 400 and 422):
`BodyNotJSON` (not UTF-8 JSON, or JSON this receiver refuses) and `PayloadInvalid` (JSON, but not the
source's shape: `"alerts[0].status: Input should be 'firing' or 'resolved'"`, too many alerts, or a
string the store cannot hold).

What the JSON decoder refuses (400), beyond syntax: `NaN`, `Infinity`, `-Infinity` (not JSON, though
Python's parser reads them), numbers that overflow a float (`1e999`), integers of more than 100
digits (`MAX_INT_DIGITS`), invalid UTF-8, a byte-order mark, nesting deep enough to exhaust the parser. Duplicate keys are
accepted and the last one wins (RFC 8259 leaves it to the receiver; JavaScript and Go do the same).

What the parsed alerts may not carry (422 naming the field): a NUL character (`\\u0000`) or a lone
UTF-16 surrogate (`\\ud800`) in any string that is stored (name, service, fingerprint, label and
annotation keys and values): PostgreSQL text cannot hold NUL, and a lone surrogate is not encodable
as UTF-8. We refuse rather than store an escaped copy, so what is stored is what was sent.

Work is bounded before it is done per alert: the number of alerts is counted on the decoded document,
before any alert is validated (`ParseContext.max_alerts`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import ValidationError

from intake.alert import Alert
from intake.errors import BodyNotJSON, PayloadInvalid, UnknownSource
from intake.parsers import alertmanager, generic, grafana
from intake.parsers.common import ParseContext, stable_fingerprint
from intake.parsers.sentry import parse_sentry

__all__ = [
    "SOURCES",
    "ParseContext",
    "check_storable",
    "decode_json",
    "describe_validation_error",
    "parse",
    "stable_fingerprint",
]

SOURCES: tuple[str, ...] = ("alertmanager", "sentry", "grafana", "generic")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


MAX_INT_DIGITS = 100
"""Longer integer literals are refused before conversion: CPython's str -> int is quadratic in the digits
(250 integers of 4,000 digits held the interpreter ~80 ms in one call). No field we read is near it."""


def _short_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text[:24]} is out of range")
    return number


def decode_json(body: bytes) -> Any:
    """The decoded document; `BodyNotJSON` with the position of the first error (see the module doc)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyNotJSON(f"body is not UTF-8 (byte {exc.start})") from exc
    try:
        return json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_short_int
        )
    except json.JSONDecodeError as exc:
        raise BodyNotJSON(f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise BodyNotJSON("body is not JSON this receiver accepts: nested too deeply") from exc
    except ValueError as exc:  # NaN/Infinity, 1e999, an integer of more than 100 digits
        reason = str(exc).split(";")[0][:120]
        raise BodyNotJSON(f"body is not JSON this receiver accepts: {reason}") from exc


_ALERT_LISTS = {"alertmanager": "alerts", "grafana": "alerts", "generic": "alerts"}


def _check_count(source: str, document: dict[str, Any], ctx: ParseContext) -> None:
    """Refuse more than `ctx.max_alerts` alerts from a cheap count, before any alert is validated."""
    key = _ALERT_LISTS.get(source)
    items = document.get(key) if key else None
    if isinstance(items, list) and len(items) > ctx.max_alerts:
        raise PayloadInvalid(f"{key}: {len(items)} alerts in one request, at most {ctx.max_alerts} accepted")


def _unstorable(text: str) -> str | None:
    """Why the store cannot hold `text`, or None. Linear in its length."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which the store cannot hold"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone UTF-16 surrogate, which is not encodable as UTF-8"
    return None


_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
"""In valid UTF-8 JSON a NUL or a surrogate can only come from a `\\u` escape: without one in the body,
no string can hold either and the per-string check is skipped (it cost ~40 ms per 1,000 alerts)."""


def check_storable(alerts: list[Alert], *, prefix: str = "alerts") -> None:
    """`PayloadInvalid` naming the first stored string (of any alert) with a NUL or a lone surrogate."""
    for index, alert in enumerate(alerts):
        where = f"{prefix}[{index}]"
        for field in ("name", "service", "fingerprint"):
            if why := _unstorable(getattr(alert, field)):
                raise PayloadInvalid(f"{where}.{field}: {why}")
        for part in ("labels", "annotations"):
            for key, value in getattr(alert, part).items():
                if why := _unstorable(key):
                    raise PayloadInvalid(f"{where}.{part} key {key[:40]!r}: {why}")
                if why := _unstorable(value):
                    raise PayloadInvalid(f"{where}.{part}[{key[:40]!r}]: {why}")


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def describe_validation_error(exc: ValidationError) -> str:
    """`"alerts[0].status: Input should be 'firing' or 'resolved' (and 2 more errors)"`."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0]
    message = f"{_path(tuple(first['loc']))}: {first['msg']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return message


def parse(source: str, body: bytes, ctx: ParseContext, *, sentry_resource: str | None = None) -> list[Alert]:
    """Every alert in `body` sent by `source` (one of `SOURCES`), normalised."""
    if source not in SOURCES:
        raise UnknownSource(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    document = decode_json(body)
    if not isinstance(document, dict):
        raise PayloadInvalid(f"body: expected a JSON object, got {type(document).__name__}")
    _check_count(source, document, ctx)
    try:
        if source == "alertmanager":
            alerts = alertmanager.to_alerts(alertmanager.AlertmanagerPayload.model_validate(document), ctx)
        elif source == "grafana":
            alerts = grafana.to_alerts(grafana.GrafanaPayload.model_validate(document), ctx)
        elif source == "generic":
            alerts = generic.to_alerts(generic.GenericPayload.model_validate(document), ctx)
        else:
            alerts = parse_sentry(document, sentry_resource, ctx)
    except ValidationError as exc:
        raise PayloadInvalid(describe_validation_error(exc)) from exc
    except ValueError as exc:
        raise PayloadInvalid(str(exc)) from exc
    if len(alerts) > ctx.max_alerts:
        raise PayloadInvalid(
            f"alerts: {len(alerts)} alerts in one request, at most {ctx.max_alerts} accepted"
        )
    if _SUSPECT_ESCAPE.search(body):
        check_storable(alerts, prefix="alerts" if source in _ALERT_LISTS else "sentry alert")
    return alerts
