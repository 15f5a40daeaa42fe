"""What the three external API stand-ins share: their names, modes (up, refusing connections,
answering 5xx, slow) and the base class that switches between them."""

from __future__ import annotations

from typing import Literal, get_args

from sandbox.httpserver import Request, Response, StandIn

__all__ = ["API_NAMES", "MODES", "ApiMode", "ApiName", "ExternalApi"]

ApiName = Literal["hume", "openai", "spotify"]
ApiMode = Literal["up", "down-refused", "down-5xx", "slow"]
API_NAMES: tuple[str, ...] = get_args(ApiName)
MODES: tuple[str, ...] = get_args(ApiMode)


class ExternalApi(StandIn):
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
