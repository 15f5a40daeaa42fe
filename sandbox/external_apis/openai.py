"""The OpenAI stand-in: chat completions (the coach) and the model list, bearer keys."""

from __future__ import annotations

import hmac
import time
import uuid
from typing import Any

from sandbox.external_apis.base import ExternalApi
from sandbox.httpserver import HttpError, Request, Response

__all__ = ["OpenAiStandIn"]


class OpenAiStandIn(ExternalApi):
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


def _openai_error(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
