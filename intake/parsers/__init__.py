"""Parsers: one source's webhook body in, normalised `Alert`s out.

Usage::

    from intake.parsers import SOURCES, ParseContext, parse

    alerts = parse("alertmanager", body_bytes, ParseContext())            # list[Alert]
    alerts = parse("sentry", body_bytes, ctx, sentry_resource="event_alert")

Errors, each with a `message` naming what is wrong (the HTTP layer answers them 400 and 422):
`BodyNotJSON` (not UTF-8 JSON) and `PayloadInvalid` (JSON, but not the source's shape:
`"alerts[0].status: Input should be 'firing' or 'resolved'"`).
"""

from __future__ import annotations

import json
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
    "decode_json",
    "describe_validation_error",
    "parse",
    "stable_fingerprint",
]

SOURCES: tuple[str, ...] = ("alertmanager", "sentry", "grafana", "generic")


def decode_json(body: bytes) -> Any:
    """The decoded document; `BodyNotJSON` with the position of the first error."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyNotJSON(f"body is not UTF-8 (byte {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BodyNotJSON(f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise BodyNotJSON("body is not JSON this receiver accepts: nested too deeply") from exc


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
    return alerts
