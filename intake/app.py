"""The intake's HTTP API: an ASGI app (Starlette) that monitoring systems post alerts to.

Usage::

    app = create_app(config, ingestor)          # intake/__main__.py serves it with uvicorn
    # POST /alerts/{alertmanager,sentry,grafana,generic}  -> 202 {"accepted": n, "raw_id": ..., ...}
    # GET /healthz (process up), /readyz (store reachable), /metrics (Prometheus text)

Every request to `/alerts/<source>` goes through the same gate, in this order, and stops at the first
failure with a JSON body `{"error": "<what is wrong>"}`:

1. credentials: bearer token of the source, or Sentry's signature header present (401); Sentry only:
   `Sentry-Hook-Timestamp` present and within `sentry_timestamp_window_s` of now (401);
2. `Content-Type: application/json` (415);
3. size: `Content-Length` over the limit, or the body read so far over it (413, read in chunks and
   cut off at the limit: an endless body is never buffered); time: the whole body within
   `body_timeout_s` (408: a trickled body does not hold its connection for ever);
4. Sentry only: the signature of the body (401);
5. JSON (400: whatever the decoder refuses), the count of alerts (422, counted before any alert is
   validated), the source's shape and what the store can hold (422 naming the field);
6. the raw body and the normalised alerts are committed to the store (`Ingestor.ingest`) and only then
   the answer is 202. The store failing is the only 5xx (503, "retry"): senders retry on it.

Steps 4 and 5 run in worker threads (at most `parse_threads` at once), never on the event loop; a body
of at most `batch_decode_max_bytes` (16 KiB: a usual webhook) is decoded by the group commit's writer
thread just before its batch is stored (one thread hop fewer per request, same checks, same answers), and
their cost is linear in the body (intake/triage.py and intake/signals.py cap what they match), so
`/healthz` keeps answering while the largest body allowed is parsed. A parser failure this module does
not expect (a bug) is logged and answered 422, never 500: the input is what the sender can change.

Nothing is stored for a request refused at steps 1–5.

The hot path: `POST /alerts/<known source>` is served by a thin ASGI handler in front of Starlette
(`IntakeApp.__call__`), the same gate and answers; it skips Starlette's routing and its two exception
middlewares, layers this route does not need (an exception escaping it is uvicorn's 500, as it was
Starlette's), and reads the request and writes the answer on plain ASGI (intake/edge.py: ~90 us less
per request than Starlette's `Request` and `JSONResponse`, same headers, limits and JSON). With httptools and no access log, the HTTP layer went from ~37% to ~18% of the
interpreter's time per alert under `wrk` (bench/RESULTS.md §10). Everything else (other methods,
unknown sources, /healthz, /readyz, /metrics, the lifespan) goes through Starlette as before.

Group commit: when the ingestor has `ingest_many(requests) -> [Receipt | Exception]` (one transaction
per batch), requests go through `intake.batch.GroupCommitter`: those that arrive while a commit runs
share the next one, each answered after its commit. Without it, one `ingest` per request in a worker
thread. Either way a 202 means "committed".
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from intake.auth import (
    Unauthorized,
    check_bearer,
    check_sentry,
    check_sentry_header_present,
    check_sentry_timestamp,
)
from intake.batch import GroupCommitter, IngestRequest, Prepare
from intake.config import IntakeConfig
from intake.edge import Refused, json_bytes, read_body, request_headers, send_json
from intake.errors import BodyNotJSON, PayloadInvalid
from intake.ingest import Ingestor, Receipt
from intake.metrics import IntakeMetrics
from intake.parsers import SOURCES, ParseContext, parse
from runbook.models import Alert

__all__ = ["IntakeApp", "Refused", "create_app", "read_body"]

log = logging.getLogger("intake.app")

_SAFE_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "user-agent",
        "request-id",
        "sentry-hook-resource",
        "sentry-hook-timestamp",
    }
)
"""Headers kept with the raw payload. Never `authorization` (a secret) or signatures."""


_ALERTS_PREFIX = "/alerts/"


class IntakeApp(Starlette):
    """Starlette with the alert routes' hot path in front: `POST /alerts/<source>` of a known source goes
    straight to `alerts` (a plain ASGI handler); every other request through Starlette's stack."""

    alerts: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.alerts is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(_ALERTS_PREFIX)
            and scope["path"][len(_ALERTS_PREFIX) :] in SOURCES
        ):
            scope["app"] = self
            await self.alerts(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _json_content_type(value: str | None) -> bool:
    if not value:
        return False
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def decode_request(
    config: IntakeConfig, ctx: ParseContext, source: str, body: bytes, headers: Mapping[str, str]
) -> list[Alert]:
    """Steps 4 and 5 of the gate, as one call for a worker thread: `Refused` (401, 400, 422) or the alerts."""
    if source == "sentry":
        try:
            check_sentry(config, body, headers)
        except Unauthorized as exc:
            raise Refused(401, exc.reason) from exc
    try:
        return parse(source, body, ctx, sentry_resource=headers.get("sentry-hook-resource"))
    except BodyNotJSON as exc:
        raise Refused(400, exc.message) from exc
    except PayloadInvalid as exc:
        raise Refused(422, exc.message) from exc
    except Exception as exc:  # a parser bug must not become a 5xx the sender retries for ever
        log.exception("intake %s: unexpected error while parsing a %d-byte body", source, len(body))
        raise Refused(422, f"body could not be read as a {source} payload ({type(exc).__name__})") from exc


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers worth keeping with the raw payload (no credentials)."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in _SAFE_HEADERS}


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def create_app(
    config: IntakeConfig,
    ingestor: Ingestor,
    *,
    metrics: IntakeMetrics | None = None,
    background: Callable[[], Any] | None = None,
) -> IntakeApp:
    """The ASGI app. `background()` is entered for the app's lifetime (the dispatcher), if given.

    `background` returns a context manager (sync): entered at startup, exited at shutdown.
    """
    metrics = metrics or IntakeMetrics()
    metrics.track_queue_depth(ingestor.queue_depth)
    ctx = config.parse_context()
    limiter = anyio.CapacityLimiter(max(4, config.workers * 8))
    parse_limiter = anyio.CapacityLimiter(config.parse_threads)
    ingest_many = getattr(ingestor, "ingest_many", None)
    committer = GroupCommitter(ingest_many, on_batch=metrics.observe_batch) if callable(ingest_many) else None

    children: dict[
        tuple[Any, ...], Any
    ] = {}  # the metrics' labelled children, looked up once each (`_count`)

    async def receive_alerts(request: Request) -> Response:
        source = request.path_params["source"]
        if source not in SOURCES:
            return _error(404, f"unknown source {source[:40]!r}; known: {', '.join(SOURCES)}")
        status, payload = await _answer(request.scope, request.receive, source)
        return Response(json_bytes(payload), status_code=status, media_type="application/json")

    async def alerts_asgi(scope: Scope, receive: Receive, send: Send) -> None:
        """The hot path (`IntakeApp`): `scope["path"]` is `/alerts/<a known source>`, the method POST."""
        status, payload = await _answer(scope, receive, scope["path"][len(_ALERTS_PREFIX) :])
        await send_json(send, status, payload)

    async def _answer(scope: Scope, receive: Receive, source: str) -> tuple[int, dict[str, Any]]:
        """The answer's status and JSON body; the request counted and timed."""
        started = time.perf_counter()
        try:
            status, payload = 202, await _receive(scope, receive, source)
        except Refused as refused:
            if refused.status >= 500:
                log.error("intake %s: %s", source, refused.reason)
            status, payload = refused.status, {"error": refused.reason}
        _count(metrics.requests, source=source, code=str(status)).inc()
        _count(metrics.request_seconds, source=source).observe(time.perf_counter() - started)
        return status, payload

    def _count(metric: Any, **labels: str) -> Any:
        """`metric.labels(**labels)`, looked up once per label set (prometheus_client's lookup is not free)."""
        key = (id(metric), *labels.values())
        child = children.get(key)
        if child is None:
            child = children[key] = metric.labels(**labels)
        return child

    async def _receive(scope: Scope, receive: Receive, source: str) -> dict[str, Any]:
        headers = request_headers(scope)
        # 1. credentials (before reading anything more)
        try:
            if source == "sentry":
                check_sentry_header_present(config, headers)
                check_sentry_timestamp(config, headers)
            else:
                check_bearer(config, source, headers.get("authorization"))
        except Unauthorized as exc:
            raise Refused(401, exc.reason) from exc
        # 2. content type
        if not _json_content_type(headers.get("content-type")):
            got = headers.get("content-type") or "none"
            raise Refused(415, f"Content-Type must be application/json (got {got[:80]})")
        # 3. size and time, enforced while reading
        body = await read_body(receive, headers, config.max_body_bytes, config.body_timeout_s)
        if committer is not None and committer.running and len(body) <= config.batch_decode_max_bytes:
            # 4-6 for a small body: decoded in the writer thread, just before its batch is stored
            alerts: list[Alert] = []

            def prepare() -> IngestRequest:
                alerts.extend(decode_request(config, ctx, source, body, headers))
                return IngestRequest(source, body, safe_headers(headers), alerts)

            receipt = await _submit(committer, prepare, len(body))
        else:
            # 4-5. signature, JSON, count, shape: off the event loop, a bounded number at once
            alerts = await anyio.to_thread.run_sync(
                lambda: decode_request(config, ctx, source, body, headers), limiter=parse_limiter
            )
            # 6. durable before the answer
            receipt = await _store(source, body, safe_headers(headers), alerts)
        for alert in alerts:
            _count(metrics.received, source=source, status=alert.status.value).inc()
        if receipt.joined:
            _count(metrics.deduplicated, source=source).inc(receipt.joined)
        if receipt.created:
            _count(metrics.incidents_created, source=source).inc(len(receipt.created))
        return receipt.as_json()

    async def _store(source: str, body: bytes, headers: dict[str, str], alerts: list[Alert]) -> Receipt:
        """One request, committed; 503 ("retry") on any failure. The one place group commit plugs in."""
        try:
            if committer is not None and committer.running:
                return await committer.submit(IngestRequest(source, body, headers, alerts))
            return await anyio.to_thread.run_sync(
                lambda: ingestor.ingest(source, body, headers, alerts), limiter=limiter
            )
        except Exception as exc:  # the store is down or refused: the sender must retry
            log.exception("intake %s: could not store %d alert(s)", source, len(alerts))
            raise Refused(503, f"could not store the alerts, retry later ({type(exc).__name__})") from exc

    async def _submit(committer: GroupCommitter, prepare: Prepare, size: int) -> Receipt:
        """A small request decoded and committed by the writer: its refusal as is, any other failure 503."""
        try:
            return await committer.submit(prepare)
        except Refused:
            raise
        except Exception as exc:  # the store is down or refused: the sender must retry
            log.exception("intake: could not store a %d-byte request", size)
            raise Refused(503, f"could not store the alerts, retry later ({type(exc).__name__})") from exc

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ready, why = await anyio.to_thread.run_sync(ingestor.ready, limiter=limiter)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "detail": why}, status_code=200 if ready else 503
        )

    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = await anyio.to_thread.run_sync(metrics.render, limiter=limiter)
        return Response(body, media_type=content_type)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            if committer is not None:
                tasks.start_soon(committer.run)
            if background is None:
                yield
            else:
                with background():
                    yield
            tasks.cancel_scope.cancel()

    routes = [
        Route("/alerts/{source:str}", receive_alerts, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = IntakeApp(routes=routes, lifespan=lifespan)
    app.alerts = alerts_asgi
    app.state.metrics = metrics
    app.state.config = config
    app.state.sources = SOURCES
    app.state.committer = committer
    return app
