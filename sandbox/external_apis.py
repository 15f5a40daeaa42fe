"""Hume, OpenAI and Spotify stand-ins: one server (one port) each, taken down and brought back by mode.

Usage::

    apis = ExternalApis().start()
    apis.url("hume")                      # http://127.0.0.1:PORT (the base URL of api.hume.ai)
    apis.health_url("hume")               # {url}/health      (the guide: curl https://api.hume.ai/health)
    apis.health_url("openai")             # {url}/v1/models   (curl https://api.openai.com/v1/models)
    apis.health_url("spotify")            # {url}/v1/me       (curl https://api.spotify.com/v1/me)
    apis.set_mode("hume", "down-refused") # the listener closes: connections are refused (ECONNREFUSED)
    apis.set_mode("hume", "down-5xx")     # every request answers 503 in that API's error shape
    apis.set_mode("hume", "slow", delay_s=3.0)   # every request waits 3 s first
    apis.set_mode("hume", "up")           # back, on the same port
    apis.requests("openai")               # what that API received, in order
    apis.stop()

One server per API, so taking one down refuses connections to that API alone, on its own port.
The feature endpoints the service under care calls answer plausible JSON in each API's shape:
Hume `POST /v0/batch/jobs` (+ `GET /v0/batch/jobs/{id}` and `/predictions`), OpenAI
`POST /v1/chat/completions` and `GET /v1/models`, Spotify `GET /v1/recommendations` and `GET /v1/me`.

Keys: pass `keys={"openai": "sk-...", "spotify": "...", "hume": "..."}` to make an API check them as
the real one does (OpenAI and Spotify: `Authorization: Bearer`; Hume: `X-Hume-Api-Key`; Hume's
`/health` is open), answering 401 in that API's own error shape. An API without a key accepts any.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal, get_args

from sandbox.httpserver import HttpError, RecordedRequest, Request, Response, StandIn

__all__ = [
    "API_NAMES",
    "ApiMode",
    "ApiName",
    "ExternalApis",
    "HumeStandIn",
    "OpenAiStandIn",
    "SpotifyStandIn",
]

ApiName = Literal["hume", "openai", "spotify"]
ApiMode = Literal["up", "down-refused", "down-5xx", "slow"]
API_NAMES: tuple[str, ...] = get_args(ApiName)
MODES: tuple[str, ...] = get_args(ApiMode)


class _ExternalApi(StandIn):
    """One external API: its routes, its health path, its 401/503 shapes, and its mode."""

    health_path = "/health"

    def __init__(self, key: str | None = None) -> None:
        super().__init__()
        self.key = key
        self.mode: str = "up"
        self.delay_s = 0.0

    def unavailable(self) -> Response:
        """What this API answers in `down-5xx`."""
        return Response.json({"message": "Service Unavailable"}, status=503)

    def set_mode(self, mode: str, delay_s: float = 2.0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        if delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        server = self.server
        if server.stopped:
            raise RuntimeError(f"{self.name} stand-in is stopped")
        if mode == "down-refused":
            if server.listening:
                server.close_listener()
        elif not server.listening:
            server.reopen_listener()
        server.fault = (lambda _request: self.unavailable()) if mode == "down-5xx" else None
        server.delay_s = delay_s if mode == "slow" else 0.0
        self.mode = mode
        self.delay_s = server.delay_s

    def _reset_state(self) -> None:
        if not self.server.stopped:
            self.set_mode("up")

    def _check_key(self, request: Request) -> None:
        return None


class HumeStandIn(_ExternalApi):
    """api.hume.ai: `GET /health`, batch jobs (`POST /v0/batch/jobs`, status, predictions)."""

    name = "hume"
    health_path = "/health"

    def __init__(self, key: str | None = None) -> None:
        super().__init__(key)
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self.server.route("GET", "/health", lambda _r: Response.json({"status": "ok"}))
        self.server.route("POST", "/v0/batch/jobs", self._start_job)
        self.server.route("GET", "/v0/batch/jobs/{job_id}", self._job)
        self.server.route("GET", "/v0/batch/jobs/{job_id}/predictions", self._predictions)

    def _reset_state(self) -> None:
        super()._reset_state()
        with self._lock:
            self._jobs.clear()

    def _check_key(self, request: Request) -> None:
        if self.key is None:
            return
        given = request.headers.get("x-hume-api-key")
        if given is None:
            raise HttpError(
                401,
                {
                    "fault": {
                        "faultstring": "Failed to resolve API Key variable request.header.X-Hume-Api-Key",
                        "detail": {"errorcode": "steps.oauth.v2.FailedToResolveAPIKey"},
                    }
                },
            )
        if not hmac.compare_digest(given.encode(), self.key.encode()):
            raise HttpError(
                401,
                {
                    "fault": {
                        "faultstring": "Invalid ApiKey",
                        "detail": {"errorcode": "oauth.v2.InvalidApiKey"},
                    }
                },
            )

    def _start_job(self, request: Request) -> Response:
        self._check_key(request)
        body = request.json()
        if not isinstance(body, dict) or not (body.get("text") or body.get("urls")):
            raise HttpError(400, {"message": "Request must include at least one of 'urls', 'text' or files"})
        now_ms = int(time.time() * 1000)
        job_id = str(uuid.uuid4())
        texts = [str(t) for t in body.get("text") or []] or [str(u) for u in body.get("urls") or []]
        with self._lock:
            self._jobs[job_id] = {
                "job_id": job_id,
                "type": "INFERENCE",
                "request": {"models": body.get("models") or {"language": {}}, "text": texts},
                "state": {
                    "status": "COMPLETED",
                    "created_timestamp_ms": now_ms,
                    "started_timestamp_ms": now_ms,
                    "ended_timestamp_ms": now_ms,
                    "num_predictions": len(texts),
                    "num_errors": 0,
                },
            }
        return Response.json({"job_id": job_id})

    def _job(self, request: Request) -> Response:
        self._check_key(request)
        with self._lock:
            job = self._jobs.get(request.params["job_id"])
        if job is None:
            raise HttpError(404, {"message": f"Job {request.params['job_id']} not found"})
        return Response.json(job)

    def _predictions(self, request: Request) -> Response:
        self._check_key(request)
        with self._lock:
            job = self._jobs.get(request.params["job_id"])
        if job is None:
            raise HttpError(404, {"message": f"Job {request.params['job_id']} not found"})
        predictions = [{"text": text, "emotions": _emotions(text)} for text in job["request"]["text"]]
        return Response.json(
            [
                {
                    "source": {"type": "text"},
                    "results": {
                        "predictions": [
                            {
                                "file": "text",
                                "models": {
                                    "language": {
                                        "grouped_predictions": [{"id": "unknown", "predictions": predictions}]
                                    }
                                },
                            }
                        ],
                        "errors": [],
                    },
                }
            ]
        )


class OpenAiStandIn(_ExternalApi):
    """api.openai.com: `GET /v1/models`, `POST /v1/chat/completions`."""

    name = "openai"
    health_path = "/v1/models"

    def __init__(self, key: str | None = None) -> None:
        super().__init__(key)
        self.server.route("GET", "/v1/models", self._models)
        self.server.route("POST", "/v1/chat/completions", self._chat)

    def unavailable(self) -> Response:
        return Response.json(
            _openai_error("The server is overloaded or not ready yet.", "server_error"), status=503
        )

    def _check_key(self, request: Request) -> None:
        if self.key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise HttpError(
                401,
                _openai_error(
                    "You didn't provide an API key. You need to provide your API key in an Authorization "
                    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    "invalid_request_error",
                ),
            )
        if not hmac.compare_digest(given.strip().encode(), self.key.encode()):
            shown = given.strip()[:3] + "*" * 4 + given.strip()[-4:] if len(given.strip()) > 8 else "***"
            raise HttpError(
                401,
                _openai_error(
                    f"Incorrect API key provided: {shown}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    code="invalid_api_key",
                ),
            )

    def _models(self, request: Request) -> Response:
        self._check_key(request)
        created = 1715367049
        models = [
            {"id": name, "object": "model", "created": created, "owned_by": "system"}
            for name in ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
        ]
        return Response.json({"object": "list", "data": models})

    def _chat(self, request: Request) -> Response:
        self._check_key(request)
        body = request.json()
        if not isinstance(body, dict) or not body.get("model"):
            raise HttpError(400, _openai_error("you must provide a model parameter", "invalid_request_error"))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HttpError(
                400,
                _openai_error(
                    "Missing required parameter: 'messages'.", "invalid_request_error", param="messages"
                ),
            )
        prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        reply = f"A calm, warm piece in D major at 72 bpm to match: {prompt[:80]}".strip()
        prompt_tokens = max(1, len(prompt.split()))
        completion_tokens = len(reply.split())
        return Response.json(
            {
                "id": "chatcmpl-" + uuid.uuid4().hex[:24],
                "object": "chat.completion",
                "created": int(time.time()),
                "model": str(body["model"]),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                "system_fingerprint": "fp_sandbox",
            }
        )


class SpotifyStandIn(_ExternalApi):
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


class ExternalApis:
    """The three external APIs the service under care depends on, each on its own port."""

    def __init__(self, keys: Mapping[str, str] | None = None) -> None:
        keys = dict(keys or {})
        unknown = set(keys) - set(API_NAMES)
        if unknown:
            raise ValueError(f"unknown API name(s) {sorted(unknown)}; one of {', '.join(API_NAMES)}")
        self.apis: dict[str, _ExternalApi] = {
            "hume": HumeStandIn(keys.get("hume")),
            "openai": OpenAiStandIn(keys.get("openai")),
            "spotify": SpotifyStandIn(keys.get("spotify")),
        }

    def start(self, host: str = "127.0.0.1") -> ExternalApis:
        """Start every API on a free port of `host`. Returns self."""
        started: list[_ExternalApi] = []
        try:
            for api in self.apis.values():
                api.start(host, 0)
                started.append(api)
        except Exception:
            for api in started:
                api.stop()
            raise
        return self

    def stop(self) -> None:
        for api in self.apis.values():
            api.stop()

    def __enter__(self) -> ExternalApis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api(self, name: str) -> _ExternalApi:
        try:
            return self.apis[name]
        except KeyError:
            raise ValueError(f"unknown API {name!r}; one of {', '.join(API_NAMES)}") from None

    def url(self, name: str) -> str:
        """Base URL of API `name` (stands for https://api.hume.ai, https://api.openai.com, ...)."""
        return self.api(name).url

    @property
    def urls(self) -> dict[str, str]:
        return {name: api.url for name, api in self.apis.items()}

    def health_url(self, name: str) -> str:
        """The URL the guide curls to see whether API `name` is up."""
        api = self.api(name)
        return api.url + api.health_path

    def set_mode(self, name: str, mode: str, delay_s: float = 2.0) -> None:
        """`up`, `down-refused` (connection refused), `down-5xx` (503) or `slow` (wait `delay_s`)."""
        self.api(name).set_mode(mode, delay_s=delay_s)

    def mode(self, name: str) -> str:
        return self.api(name).mode

    def requests(self, name: str) -> list[RecordedRequest]:
        return self.api(name).requests

    def reset(self) -> None:
        """Every API up, requests and jobs forgotten."""
        for api in self.apis.values():
            api.reset()


def _openai_error(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


_EMOTIONS = ("Calmness", "Joy", "Contentment", "Sadness", "Anxiety", "Tiredness", "Interest")


def _emotions(text: str) -> list[dict[str, Any]]:
    """Stable, plausible scores for a text (a hash, not a model)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [{"name": name, "score": round(digest[i] / 255, 4)} for i, name in enumerate(_EMOTIONS)]


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
