"""The Spotify stand-in: recommendations (playlists) and `/v1/me`, bearer tokens."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from sandbox.external_apis.base import ExternalApi
from sandbox.httpserver import HttpError, Request, Response

__all__ = ["SpotifyStandIn"]


class SpotifyStandIn(ExternalApi):
    """api.spotify.com: `GET /v1/me`, `GET /v1/recommendations`."""

    name = "spotify"
    health_path = "/v1/me"

    def __init__(self, key: str | None = None) -> None:
        super().__init__(key)
        self.server.route("GET", "/v1/me", self._me)
        self.server.route("GET", "/v1/recommendations", self._recommendations)

    def unavailable(self) -> Response:
        return Response.json({"error": {"status": 503, "message": "Service unavailable"}}, status=503)

    def _check_key(self, request: Request) -> None:
        if self.key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise HttpError(401, {"error": {"status": 401, "message": "No token provided"}})
        if not hmac.compare_digest(given.strip().encode(), self.key.encode()):
            raise HttpError(401, {"error": {"status": 401, "message": "Invalid access token"}})

    def _me(self, request: Request) -> Response:
        self._check_key(request)
        return Response.json(
            {
                "id": "emotionscare",
                "display_name": "EmotionsCare",
                "type": "user",
                "uri": "spotify:user:emotionscare",
                "country": "FR",
                "product": "premium",
                "followers": {"href": None, "total": 0},
                "external_urls": {"spotify": "https://open.spotify.com/user/emotionscare"},
                "href": f"{self.url}/v1/users/emotionscare",
                "images": [],
            }
        )

    def _recommendations(self, request: Request) -> Response:
        self._check_key(request)
        seeds = {
            kind: [s for s in (request.arg(f"seed_{kind}") or "").split(",") if s]
            for kind in ("genres", "artists", "tracks")
        }
        total = sum(len(v) for v in seeds.values())
        if total == 0:
            raise HttpError(400, {"error": {"status": 400, "message": "No seed provided"}})
        if total > 5:
            raise HttpError(400, {"error": {"status": 400, "message": "Too many seeds provided"}})
        try:
            limit = int(request.arg("limit") or 20)
        except ValueError as exc:
            raise HttpError(400, {"error": {"status": 400, "message": "Invalid limit"}}) from exc
        if not 1 <= limit <= 100:
            raise HttpError(400, {"error": {"status": 400, "message": "Invalid limit"}})
        seed_text = ",".join(f"{k}:{v}" for k, vs in sorted(seeds.items()) for v in vs)
        tracks = [_track(seed_text, i, self.url) for i in range(limit)]
        return Response.json(
            {
                "tracks": tracks,
                "seeds": [
                    {
                        "id": seed,
                        "type": kind[:-1].upper(),
                        "initialPoolSize": 250,
                        "afterFilteringSize": 250,
                        "afterRelinkingSize": 250,
                        "href": None,
                    }
                    for kind, values in seeds.items()
                    for seed in values
                ],
            }
        )


def _track(seed_text: str, index: int, base_url: str) -> dict[str, Any]:
    digest = hashlib.sha256(f"{seed_text}/{index}".encode()).hexdigest()
    track_id = digest[:22]
    return {
        "id": track_id,
        "name": f"Sandbox Track {digest[:6].upper()}",
        "type": "track",
        "uri": f"spotify:track:{track_id}",
        "duration_ms": 120000 + int(digest[6:10], 16) % 120000,
        "popularity": int(digest[10:12], 16) % 100,
        "explicit": False,
        "preview_url": None,
        "href": f"{base_url}/v1/tracks/{track_id}",
        "artists": [{"id": digest[22:44], "name": "Sandbox Artist", "type": "artist"}],
        "album": {"id": digest[-22:], "name": "Sandbox Album", "type": "album", "album_type": "album"},
    }
