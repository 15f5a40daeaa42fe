"""The Hume stand-in: batch jobs (music generation) and their predictions, `X-Hume-Api-Key`."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from typing import Any

from sandbox.external_apis.base import ExternalApi
from sandbox.httpserver import HttpError, Request, Response

__all__ = ["HumeStandIn"]


class HumeStandIn(ExternalApi):
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


_EMOTIONS = ("Calmness", "Joy", "Contentment", "Sadness", "Anxiety", "Tiredness", "Interest")


def _emotions(text: str) -> list[dict[str, Any]]:
    """Stable, plausible scores for a text (a hash, not a model)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [{"name": name, "score": round(digest[i] / 255, 4)} for i, name in enumerate(_EMOTIONS)]
