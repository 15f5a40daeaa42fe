"""Who may post alerts: a bearer token per source, or Sentry's signature of the body.

Usage::

    check_bearer(config, "alertmanager", request.headers.get("authorization"))   # raises Unauthorized
    check_sentry(config, body, request.headers)                                   # raises Unauthorized

Both compare in constant time (`hmac.compare_digest`). A source with no credential configured refuses
everything ("not configured"): the intake fails closed. `Unauthorized.reason` is the sentence the 401
carries; it never contains a credential.

Sentry (integration platform, "Verifying the Signature"): `Sentry-Hook-Signature` is the hex
HMAC-SHA256 of the request body keyed with the integration's Client Secret. Sentry signs the exact
bytes it sends, so we verify the raw body as received, before any parsing. A Sentry route may also be
given a bearer token (`tokens["sentry"]`) for senders that cannot sign.

Replays: Sentry sends `Sentry-Hook-Timestamp`, the unix time in seconds when it sent the request
(`str(int(time()))` in Sentry's sender). `check_sentry_timestamp` refuses a request whose timestamp is
missing, not a number, or further than `sentry_timestamp_window_s` (default 300 s) from our clock,
either way. Sentry's signature covers the body only, not the timestamp, so the window alone does not
stop a replay with a forged fresh timestamp: the store refuses a repeated `Request-ID` for that.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Mapping

from intake.config import IntakeConfig
from intake.errors import IntakeError

__all__ = [
    "Unauthorized",
    "check_bearer",
    "check_sentry",
    "check_sentry_header_present",
    "check_sentry_timestamp",
    "sentry_signature",
]


class Unauthorized(IntakeError):
    """Missing or wrong credentials; answered 401 with `reason`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def sentry_signature(secret: str, body: bytes) -> str:
    """The `Sentry-Hook-Signature` Sentry sends for `body`: hex HMAC-SHA256 keyed with the client secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_bearer(config: IntakeConfig, source: str, authorization: str | None) -> None:
    """Pass, or raise `Unauthorized`: `Authorization: Bearer <token>` must equal the source's token."""
    expected = config.tokens.get(source)
    if expected is None:
        raise Unauthorized(f"source {source!r} is not configured on this intake (no token set)")
    presented = _bearer(authorization)
    if presented is None:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(presented.encode("utf-8"), expected.get_secret_value().encode("utf-8")):
        raise Unauthorized(f"wrong bearer token for source {source!r}")


def check_sentry_header_present(config: IntakeConfig, headers: Mapping[str, str]) -> None:
    """The checks possible before the body is read: a credential configured, and one presented."""
    has_secret = config.sentry_client_secret is not None
    has_token = "sentry" in config.tokens
    if not has_secret and not has_token:
        raise Unauthorized("source 'sentry' is not configured on this intake (no client secret set)")
    if has_secret and headers.get("sentry-hook-signature"):
        return
    if has_token and headers.get("authorization"):
        return
    raise Unauthorized("missing Sentry-Hook-Signature header")


def check_sentry(config: IntakeConfig, body: bytes, headers: Mapping[str, str]) -> None:
    """Pass, or raise `Unauthorized`: the signature of `body`, or else the route's bearer token."""
    check_sentry_header_present(config, headers)
    signature = headers.get("sentry-hook-signature", "").strip().lower()
    if signature and config.sentry_client_secret is not None:
        expected = sentry_signature(config.sentry_client_secret.get_secret_value(), body)
        if not hmac.compare_digest(signature.encode("ascii", "replace"), expected.encode("ascii")):
            raise Unauthorized("Sentry-Hook-Signature does not match the body (wrong client secret?)")
        return
    check_bearer(config, "sentry", headers.get("authorization"))


def check_sentry_timestamp(
    config: IntakeConfig, headers: Mapping[str, str], clock: Callable[[], float] = time.time
) -> None:
    """Pass, or raise `Unauthorized`: `Sentry-Hook-Timestamp` present and within the window of now."""
    raw = headers.get("sentry-hook-timestamp", "").strip()
    if not raw:
        raise Unauthorized("missing Sentry-Hook-Timestamp header (unix time in seconds)")
    try:
        sent = float(raw) if len(raw) <= 32 else math.nan
    except ValueError:
        sent = math.nan
    if not math.isfinite(sent):
        raise Unauthorized(f"Sentry-Hook-Timestamp is not a unix time in seconds: {raw[:32]!r}")
    skew = clock() - sent
    window = config.sentry_timestamp_window_s
    if skew > window:
        raise Unauthorized(
            f"Sentry-Hook-Timestamp is {skew:.0f} s old, outside the {window:g} s window (a replay?)"
        )
    if -skew > window:
        raise Unauthorized(
            f"Sentry-Hook-Timestamp is {-skew:.0f} s in the future, outside the {window:g} s window"
        )
