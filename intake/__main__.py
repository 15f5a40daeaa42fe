"""`python -m intake`: serve the alert intake (uvicorn) with its dispatcher, from the project's settings.

Usage::

    python -m intake                      # host/port/workers from RUNBOOK_INTAKE_* (docs/intake.md)
    python -m intake --port 0 --no-dispatch

uvicorn serves it with the `httptools` parser and without its access log (one log line per request is
~4% of the CPU per alert under load; `--access-log` turns it on; `/metrics` counts requests by source and
status either way). Settings errors print one line naming the field and exit 2. Each worker process runs its own
dispatcher thread; they share the outbox (leases) and Prefect's idempotency keys, so several workers
or replicas still start one flow run per incident.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import socket
import sys
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any

from starlette.applications import Starlette

from intake.app import create_app
from intake.config import IntakeConfig
from intake.dispatch import Dispatcher
from intake.ingest import StoreIngestor
from intake.metrics import IntakeMetrics
from intake.outbox import open_outbox
from intake.sweep import Sweeper, load_sweep_settings

__all__ = ["build_app", "main", "serve", "tcp_listener"]

_NO_DISPATCH_ENV = "INTAKE_NO_DISPATCH"

APP = "intake.__main__:build_app"
"""The uvicorn factory, as an import string (several workers need one)."""

HTTP_PARSER = "httptools"
"""uvicorn's HTTP/1.1 implementation for the intake, named rather than `auto`: httptools (C, llhttp) costs
less CPU per request than h11 (bench/RESULTS.md §10). Named, not left to uvicorn's `auto`, so the intake
does not fall back to h11 silently where it is missing. Being installed, it is also what `auto` picks for
the other uvicorn servers of this environment (Prefect's server: its tests pass with it)."""


def build_app() -> Starlette:
    """The app with its store, outbox and dispatcher, from the settings (uvicorn factory)."""
    from runbook.settings import load_settings
    from runbook.store import open_store

    settings = load_settings()
    config = IntakeConfig.from_settings(settings)
    store = open_store(settings)
    outbox = open_outbox(config.store_url or settings.store.url)
    metrics = IntakeMetrics()
    dispatch_on = config.dispatch.enabled and os.environ.get(_NO_DISPATCH_ENV) != "1"
    dispatcher = Dispatcher(outbox, store, config.dispatch, metrics) if dispatch_on else None
    sweep = load_sweep_settings()
    ingestor = StoreIngestor(store, outbox, config, on_enqueued=dispatcher.wake if dispatcher else None)

    def background() -> AbstractContextManager[object]:
        stack = ExitStack()
        stack.callback(outbox.close)
        close = getattr(store, "close", None)
        if callable(close):
            stack.callback(close)
        stack.enter_context(dispatcher if dispatcher is not None else nullcontext())
        if dispatcher is not None and sweep.enabled:  # takeovers and overdue escalations (intake/sweep.py)
            stack.enter_context(Sweeper(store, config.dispatch.api_url, sweep))
        return stack

    app = create_app(config, ingestor, metrics=metrics, background=background)
    _tune_interpreter()
    return app


def _tune_interpreter() -> None:
    """Keep the event loop's pauses short while worker threads parse and store (docs/intake.md).

    - `gc.freeze()`: the objects made at start-up (modules, pydantic schemas, ~40,000+) move to a
      permanent generation, so a full collection, which a request of 80,000 tiny objects triggers,
      no longer walks them (60-70 ms measured under load, holding the interpreter);
    - a GIL switch interval of 1 ms instead of 5 ms: a thread busy parsing gives the event loop its
      turn five times as often, so `/healthz` is not queued behind each busy thread for 5 ms.
    """
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(0.001)


def main(argv: list[str] | None = None) -> int:

    from runbook.errors import SettingsError
    from runbook.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m intake", description="Serve the alert intake.")
    parser.add_argument("--host", help="listen address (default: settings intake.host)")
    parser.add_argument("--port", type=int, help="listen port (default: settings intake.port; 0 = any)")
    parser.add_argument("--workers", type=int, help="worker processes (default: settings intake.workers)")
    parser.add_argument("--no-dispatch", action="store_true", help="accept and store alerts, start no runs")
    parser.add_argument(
        "--access-log", action="store_true", help="log a line per request (off: /metrics counts them)"
    )
    args = parser.parse_args(argv)
    try:
        config = IntakeConfig.from_settings(load_settings())
    except SettingsError as exc:
        print(f"intake: {exc}", file=sys.stderr)
        return 2
    from runbook.store import refuse_outdated_schema

    if refuse_outdated_schema("intake", config.store_url):
        return 2
    if args.no_dispatch:
        os.environ[_NO_DISPATCH_ENV] = "1"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(
        host=args.host or config.host,
        port=config.port if args.port is None else args.port,
        workers=args.workers or config.workers,
        access_log=args.access_log,
    )
    return 0


def serve(*, host: str, port: int, workers: int, access_log: bool) -> None:
    """uvicorn, as `uvicorn.run` would; with several workers, on a listener whose connections get TCP_NODELAY.

    With `workers > 1` uvicorn binds the listening socket itself (`Config.bind_socket`) and leaves its
    `proto` at 0; accepted connections inherit it, and asyncio turns Nagle's algorithm off only on sockets
    that say `IPPROTO_TCP` (uvicorn issue #3149, open in 0.54). Every keep-alive request after the
    first then waits for the client's delayed ACK: measured ~44 ms per request with 2 workers against
    ~1 ms with one, on the same trivial app (bench/RESULTS.md §13). The same socket, wrapped with
    `proto=IPPROTO_TCP`, gives every worker's connections TCP_NODELAY.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": "info",
        "access_log": access_log,
        "http": HTTP_PARSER,
        "timeout_graceful_shutdown": 10,
    }
    if workers <= 1:
        uvicorn.run(APP, **options)
        return
    config = uvicorn.Config(APP, **options)
    Multiprocess(config, sockets=[tcp_listener(config.bind_socket())]).run()


def tcp_listener(bound: socket.socket) -> socket.socket:
    """`bound` (a TCP listener uvicorn made, `proto` 0) as one that says `IPPROTO_TCP`, so the connections
    it accepts inherit it and asyncio sets TCP_NODELAY on them (see `serve`); other sockets unchanged."""
    if bound.family not in (socket.AF_INET, socket.AF_INET6) or bound.proto == socket.IPPROTO_TCP:
        return bound
    listener = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    listener.set_inheritable(True)
    return listener


if __name__ == "__main__":
    sys.exit(main())
