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

The package: `base` (names, modes, the shared base class), one module per API (`hume`, `openai`,
`spotify`), and here `ExternalApis`, the group the world starts.
"""

from __future__ import annotations

from collections.abc import Mapping

from sandbox.external_apis.base import API_NAMES, MODES, ApiMode, ApiName, ExternalApi
from sandbox.external_apis.hume import HumeStandIn
from sandbox.external_apis.openai import OpenAiStandIn
from sandbox.external_apis.spotify import SpotifyStandIn
from sandbox.httpserver import RecordedRequest

__all__ = [
    "API_NAMES",
    "MODES",
    "ApiMode",
    "ApiName",
    "ExternalApi",
    "ExternalApis",
    "HumeStandIn",
    "OpenAiStandIn",
    "SpotifyStandIn",
]


class ExternalApis:
    """The three external APIs the service under care depends on, each on its own port."""

    def __init__(self, keys: Mapping[str, str] | None = None) -> None:
        keys = dict(keys or {})
        unknown = set(keys) - set(API_NAMES)
        if unknown:
            raise ValueError(f"unknown API name(s) {sorted(unknown)}; one of {', '.join(API_NAMES)}")
        self.apis: dict[str, ExternalApi] = {
            "hume": HumeStandIn(keys.get("hume")),
            "openai": OpenAiStandIn(keys.get("openai")),
            "spotify": SpotifyStandIn(keys.get("spotify")),
        }

    def start(self, host: str = "127.0.0.1") -> ExternalApis:
        """Start every API on a free port of `host`. Returns self."""
        started: list[ExternalApi] = []
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

    def api(self, name: str) -> ExternalApi:
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
