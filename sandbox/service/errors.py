"""How the app fails: `AppError` (a 5xx it logs with a stack and reports to Sentry) and the canned
stack traces Sentry groups those errors by.

Usage::

    raise AppError(500, {"error": "internal_error"}, "TypeError", "Cannot read ...", "broken")
    FRAMES["broken"]       # the frames reported with it
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.sentry import Frame

if TYPE_CHECKING:
    from sandbox.service.revision import Revision

__all__ = ["FRAMES", "AppError", "error_rate_failure", "one_line", "revision_failure"]

_MAX_LOG_BODY = 300


FRAMES: dict[str, list[Frame]] = {
    "broken": [
        ("node_modules/express/lib/router/layer.js", "handle", 95),
        ("src/middleware/session.ts", "loadSession", 31),
    ],
    "error_rate": [
        ("node_modules/express/lib/router/index.js", "next", 280),
        ("src/users/profile.ts", "getPreferences", 58),
    ],
    "database": [
        ("node_modules/pg-pool/index.js", "connect", 45),
        ("src/db/pool.ts", "withConnection", 27),
    ],
    "journal": [
        ("node_modules/pg/lib/client.js", "query", 526),
        ("src/journal/service.ts", "createEntry", 42),
    ],
    "hume": [("node_modules/undici/lib/fetch/index.js", "fetch", 112), ("src/music/hume.ts", "generate", 61)],
    "openai": [("node_modules/openai/core.js", "request", 301), ("src/coach/openai.ts", "reply", 38)],
    "spotify": [
        ("node_modules/undici/lib/fetch/index.js", "fetch", 112),
        ("src/music/spotify.ts", "recommend", 29),
    ],
    "oom": [("node:internal/v8", "heapLimit", 1), ("src/realtime/sessions.ts", "trackSession", 77)],
}


class AppError(Exception):
    """An error the app answers with a 5xx, logs with its stack and reports to Sentry."""

    def __init__(self, status: int, body: dict[str, Any], exc_type: str, message: str, frames: str) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.status = status
        self.body = body
        self.exc_type = exc_type
        self.message = message
        self.frames = frames


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:_MAX_LOG_BODY]


def revision_failure(revision: Revision) -> AppError | None:
    """How the live revision fails every API call (crash-looping, or broken code); None if it works."""
    if revision.crashing:
        return AppError(
            500,
            {
                "status": "error",
                "error": "revision_crashing",
                "reason": f"revision {revision.number} ({revision.image}) is crash-looping",
            },
            "Error",
            "application failed to start: exiting with code 1",
            "broken",
        )
    if revision.broken:
        return AppError(
            500,
            {
                "status": "error",
                "error": "internal_error",
                "reason": f"revision {revision.number} ({revision.image}): TypeError: "
                "Cannot read properties of undefined (reading 'userId')",
            },
            "TypeError",
            "Cannot read properties of undefined (reading 'userId')",
            "broken",
        )
    return None


def error_rate_failure() -> AppError:
    """What a request failed by the `error-rate` fault answers."""
    return AppError(
        500,
        {
            "error": "internal_error",
            "detail": "TypeError: Cannot read properties of null (reading 'preferences')",
        },
        "TypeError",
        "Cannot read properties of null (reading 'preferences')",
        "error_rate",
    )
