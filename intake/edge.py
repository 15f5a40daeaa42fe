"""The intake's HTTP edge on plain ASGI: a request's headers, its body within limits, a JSON answer.

Usage::

    headers = request_headers(scope)                         # {"content-type": "...", ...}
    body = await read_body(receive, headers, limit=1 << 20, timeout_s=10.0)   # or `Refused`
    await send_json(send, 202, {"accepted": 1})

Why not Starlette's `Request` and `JSONResponse` on the hot path (`POST /alerts/<source>`): each costs
more than the work it wraps for a one-alert webhook. Measured in-process (the app driven without
sockets, 16 concurrent requests, a store that answers at once): the app's own share per request was
~200 us, of which `Request.headers` (a case-insensitive view that decodes on every lookup, seven
lookups per request), `Request.stream()` under `anyio.fail_after` and `JSONResponse` were most. The
rules are the same as Starlette's: headers decoded as latin-1, the first of a repeated name wins (what
`Headers.get` and `dict(Headers)` give), the JSON rendered as `JSONResponse` renders it
(`ensure_ascii=False, allow_nan=False`, compact separators). The body's time limit is
`asyncio.timeout` (the standard library's; the app runs on asyncio under uvicorn).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from starlette.types import Receive, Scope, Send

__all__ = ["Refused", "json_bytes", "read_body", "request_headers", "send_json"]


class Refused(Exception):
    """A request refused with `status` and `reason` (the JSON error body)."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (ASGI gives them lower-cased), the first of a repeat."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return out


async def read_body(
    receive: Receive, headers: Mapping[str, str], limit: int, timeout_s: float | None = None
) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes (never buffered past it),
    with 408 when it has not all arrived within `timeout_s` seconds, and with 400 when the client
    disconnects before it is complete."""
    declared = headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise Refused(400, "Content-Length is not a number") from exc
        if size > limit:
            raise Refused(413, f"body of {size} bytes is over the limit of {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Refused(400, "client disconnected before the body was complete")
                body += message.get("body", b"")
                if len(body) > limit:
                    raise Refused(413, f"body is over the limit of {limit} bytes")
                if not message.get("more_body", False):
                    return bytes(body)
    except TimeoutError as exc:
        raise Refused(408, f"body not received within {timeout_s:g} s ({len(body)} bytes arrived)") from exc


def json_bytes(payload: Any) -> bytes:
    """`payload` rendered as Starlette's `JSONResponse` renders it."""
    return json.dumps(
        payload, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


async def send_json(send: Send, status: int, payload: Any) -> None:
    """Answer `status` with `payload` as JSON (the two ASGI messages `JSONResponse` would send)."""
    body = json_bytes(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
