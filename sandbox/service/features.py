"""The app's features: notifications, the journal (rows in its PostgreSQL), and the three that call an
external API (music generation on Hume, the coach on OpenAI, playlists on Spotify).

Usage::

    features = Features(db, apis={"hume": "http://127.0.0.1:8105"}, api_timeout_s=3.0)
    features.open()                              # its HTTP client towards the external APIs
    features.create_entry(request, revision)     # POST /api/journal → Response (AppError on failure)
    features.close()

Each handler takes the request and the live `Revision` and answers a `Response`; a bad request is an
`HttpError` 400 naming the field, a failure of the database or an upstream an `AppError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from sandbox.httpserver import HttpError, Request, Response
from sandbox.service.database import Database, query
from sandbox.service.errors import AppError, one_line
from sandbox.service.revision import Revision

__all__ = ["Features", "Handler"]

Handler = Callable[[Request, Revision], Response]


class Features:
    """The feature endpoints; `apis` (name → base URL) may be set after construction."""

    def __init__(
        self,
        db: Database,
        apis: Mapping[str, str] | None = None,
        api_keys: Mapping[str, str] | None = None,
        api_timeout_s: float = 3.0,
    ) -> None:
        self.db = db
        self.apis = dict(apis or {})
        self.api_keys = dict(api_keys or {})
        self.api_timeout_s = api_timeout_s
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None

    def open(self) -> None:
        self._http = httpx.Client(timeout=self.api_timeout_s)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def opened(self) -> bool:
        return self._http is not None

    def routes(self) -> list[tuple[str, str, Handler, str | None, bool]]:
        """(method, path, handler, the feature flag that gates it, whether the error-rate fault applies)."""
        return [
            ("POST", "/api/notifications", self.notify, None, False),
            ("GET", "/api/notifications", self.list_notifications, None, True),
            ("POST", "/api/journal", self.create_entry, "FEATURE_JOURNAL_ENABLED", True),
            ("GET", "/api/journal", self.list_entries, "FEATURE_JOURNAL_ENABLED", True),
            ("POST", "/api/music/generate", self.generate_music, "FEATURE_MUSIC_GENERATION_ENABLED", True),
            ("POST", "/api/coach", self.coach, "FEATURE_AI_COACH_ENABLED", True),
            ("GET", "/api/music/playlists", self.playlists, "FEATURE_MUSIC_PLAYBACK_ENABLED", True),
        ]

    def reset(self) -> None:
        with self._lock:
            self.notifications.clear()

    def notify(self, request: Request, _revision: Revision) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, {"error": "invalid_body", "detail": "a JSON object is required"})
        kind = body.get("type")
        if not isinstance(kind, str) or not kind.strip() or len(kind) > 64:
            raise HttpError(400, {"error": "invalid_field", "field": "type", "detail": "a non-empty string"})
        feature = body.get("feature")
        if feature is not None and (not isinstance(feature, str) or len(feature) > 64):
            raise HttpError(400, {"error": "invalid_field", "field": "feature", "detail": "a string"})
        message = body.get("message")
        if message is not None and (not isinstance(message, str) or len(message) > 2000):
            raise HttpError(400, {"error": "invalid_field", "field": "message", "detail": "a string"})
        with self._lock:
            record = {
                "id": len(self.notifications) + 1,
                "type": kind,
                "feature": feature,
                "message": message,
                "created_at": datetime.now(UTC).isoformat(),
            }
            self.notifications.append(record)
        return Response.json(record, status=201)

    def list_notifications(self, _request: Request, _revision: Revision) -> Response:
        with self._lock:
            return Response.json({"notifications": list(self.notifications)})

    def create_entry(self, request: Request, _revision: Revision) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, {"error": "invalid_body", "detail": "a JSON object is required"})
        text = body.get("body")
        if not isinstance(text, str) or not text.strip() or len(text) > 10_000:
            raise HttpError(400, {"error": "invalid_field", "field": "body", "detail": "a non-empty string"})
        mood = body.get("mood", "neutral")
        user = body.get("user_id", "anonymous")
        if not isinstance(mood, str) or not isinstance(user, str):
            raise HttpError(400, {"error": "invalid_field", "field": "mood", "detail": "strings"})

        def insert(conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
            return conn.execute(
                "INSERT INTO journal_entries (user_id, mood, body) VALUES (%s, %s, %s) RETURNING id, created_at",
                (user, mood, text),
            ).fetchone()

        try:
            row = query(self.db, insert)
        except psycopg.Error as exc:
            # Guide, P2 › Feature Broken: "Check for constraint violations"; the error says which.
            raise _journal_failed("journal_write_failed", exc) from exc
        if row is None:
            raise AppError(
                500,
                {"error": "journal_write_failed", "detail": "no row returned"},
                "Error",
                "INSERT returned no row",
                "journal",
            )
        return Response.json({"id": row[0], "created_at": row[1].isoformat(), "mood": mood}, status=201)

    def list_entries(self, request: Request, _revision: Revision) -> Response:
        try:
            limit = int(request.arg("limit", "20") or "20")
        except ValueError as exc:
            raise HttpError(
                400, {"error": "invalid_field", "field": "limit", "detail": "an integer"}
            ) from exc
        if not 1 <= limit <= 200:
            raise HttpError(400, {"error": "invalid_field", "field": "limit", "detail": "1..200"})

        def select(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT id, user_id, mood, body, created_at FROM journal_feed ORDER BY created_at DESC LIMIT %s",
                (limit,),
            ).fetchall()

        try:
            rows = query(self.db, select)
        except psycopg.Error as exc:
            raise _journal_failed("journal_read_failed", exc) from exc
        entries = [
            {"id": r[0], "user_id": r[1], "mood": r[2], "body": r[3], "created_at": r[4].isoformat()}
            for r in rows
        ]
        return Response.json({"entries": entries})

    def call_api(self, api: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        base = self.apis.get(api)
        if base is None or self._http is None:
            raise AppError(
                502,
                {"error": "upstream_unavailable", "api": api, "detail": "not configured"},
                "UpstreamError",
                f"{api} not configured",
                api,
            )
        headers = dict(kwargs.pop("headers", {}))
        key = self.api_keys.get(api)
        if key is not None:
            headers.update({"X-Hume-Api-Key": key} if api == "hume" else {"Authorization": f"Bearer {key}"})
        try:
            response = self._http.request(method, base + path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise AppError(
                502,
                {
                    "error": "upstream_unavailable",
                    "api": api,
                    "detail": f"{type(exc).__name__}: {one_line(exc)}",
                },
                "UpstreamError",
                f"{api} request failed: {type(exc).__name__}",
                api,
            ) from exc
        if response.status_code >= 500:
            raise AppError(
                502,
                {"error": "upstream_unavailable", "api": api, "detail": f"HTTP {response.status_code}"},
                "UpstreamError",
                f"{api} answered {response.status_code}",
                api,
            )
        if response.status_code >= 400:
            raise AppError(
                502,
                {"error": "upstream_rejected", "api": api, "detail": f"HTTP {response.status_code}"},
                "UpstreamError",
                f"{api} rejected the request ({response.status_code})",
                api,
            )
        return response

    def generate_music(self, request: Request, _revision: Revision) -> Response:
        body = request.json()
        prompt = body.get("prompt", "calm evening") if isinstance(body, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise HttpError(
                400, {"error": "invalid_field", "field": "prompt", "detail": "a non-empty string"}
            )
        job = self.call_api(
            "hume", "POST", "/v0/batch/jobs", json={"text": [prompt], "models": {"language": {}}}
        )
        return Response.json({"status": "generating", "hume_job_id": job.json().get("job_id")}, status=202)

    def coach(self, request: Request, _revision: Revision) -> Response:
        body = request.json()
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, str) or not message.strip():
            raise HttpError(
                400, {"error": "invalid_field", "field": "message", "detail": "a non-empty string"}
            )
        reply = self.call_api(
            "openai",
            "POST",
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": message}]},
        ).json()
        text = ((reply.get("choices") or [{}])[0].get("message") or {}).get("content", "")
        return Response.json({"reply": text})

    def playlists(self, request: Request, _revision: Revision) -> Response:
        mood = request.arg("mood", "calm") or "calm"
        tracks = self.call_api(
            "spotify", "GET", "/v1/recommendations", params={"seed_genres": mood, "limit": 5}
        ).json()
        return Response.json({"mood": mood, "tracks": [t.get("name") for t in tracks.get("tracks", [])]})


def _journal_failed(error: str, exc: psycopg.Error) -> AppError:
    """A journal query PostgreSQL refused (a constraint, a missing column): a 500 naming the cause."""
    return AppError(
        500, {"error": error, "detail": one_line(exc)}, type(exc).__name__, one_line(exc), "journal"
    )
