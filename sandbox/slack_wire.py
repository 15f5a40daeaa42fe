"""The Slack Web API's wire conventions, for the Slack stand-in (`sandbox.slack`): how a method's
arguments and token arrive (JSON body, form fields or query), the `{"ok": ...}` answer shapes, argument
coercion, and `chat.postMessage`'s `metadata` validation. Pure functions, no state.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sandbox.httpserver import Request, Response

EMOJI_NAME = re.compile(r"^[a-z0-9_+'-]{1,100}$")
TS = re.compile(r"^\d{1,12}\.\d{6}$")
METADATA_MAX_BYTES = 8000  # Slack's documented limit on a message's metadata is of this order


def parse_arguments(request: Request) -> tuple[dict[str, Any], str | None]:
    """Method arguments (query, then body) and the token (header first, then a form/query field)."""
    args: dict[str, Any] = {k: v[0] for k, v in request.query.items()}
    token: str | None = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip() or None
    body_token: str | None = None
    if request.raw_body:
        if request.content_type == "application/json":
            try:
                body = json.loads(request.raw_body)
            except ValueError:
                body = None
            if isinstance(body, dict):
                body.pop("token", None)  # Slack reads a JSON call's token from the header only
                args.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
            form = request.form()
            body_token = form.pop("token", None)
            args.update(form)
    query_token = args.pop("token", None)
    if token is None:
        token = body_token or (str(query_token) if query_token else None)
    return args, token


def ok(**fields: Any) -> Response:
    return Response.json({"ok": True, **fields})


def error(code: str) -> Response:
    """Slack's error shape: HTTP 200, `{"ok": false, "error": code}`."""
    return Response.json({"ok": False, "error": code})


def text_arg(value: Any) -> str:
    return "" if value is None else str(value)


def limit_arg(value: Any, default: int) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default


def truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def maybe_json(value: Any) -> Any:
    """Form-encoded `blocks`/`attachments` arrive as JSON strings."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def has_content(args: dict[str, Any]) -> bool:
    return any(args.get(key) not in (None, "", [], "[]") for key in ("text", "blocks", "attachments"))


def parse_metadata(value: Any) -> tuple[dict[str, Any] | None, str | None]:
    """`chat.postMessage`'s `metadata` (an object, or its JSON in a form post): (metadata, error code)."""
    if value in (None, ""):
        return None, None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None, "invalid_metadata_format"
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("event_type"), str)
        or not value["event_type"]
        or not isinstance(value.get("event_payload"), dict)
    ):
        return None, "invalid_metadata_format"
    if len(json.dumps(value)) > METADATA_MAX_BYTES:
        return None, "metadata_too_large"
    return {"event_type": value["event_type"], "event_payload": value["event_payload"]}, None
