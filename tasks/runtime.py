"""The process's settings and incident store, built on first use (never at import), reset for tests.

Usage::

    from tasks import runtime
    s = runtime.settings()      # runbook.settings.load_settings(), once per process
    st = runtime.store()        # runbook.store.open_store(s.store.url), once per process
    runtime.reset()             # forget both (tests change the environment between worlds)
    runtime.logger("tasks.slack").warning(...)   # the flow run's logger, else the named one

Flows never take settings or secrets as parameters (parameters are stored on the Prefect server and
shown in the UI); they read them here, inside the worker process.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runbook.settings import Settings
    from runbook.store import Store

__all__ = ["logger", "reset", "settings", "store"]

_lock = threading.Lock()
_settings: Settings | None = None
_store: Store | None = None


def settings() -> Settings:
    global _settings
    with _lock:
        if _settings is None:
            from runbook.settings import load_settings

            _settings = load_settings()
        return _settings


def store() -> Store:
    global _store
    current = settings()
    with _lock:
        if _store is None:
            from runbook.store import open_store

            _store = open_store(current.store.url)
        return _store


def reset() -> None:
    """Forget the cached settings and store (closing the store), e.g. after the environment changed."""
    global _settings, _store
    with _lock:
        old, _store, _settings = _store, None, None
    close = getattr(old, "close", None)
    if callable(close):
        close()
    try:
        from tasks.clients import close_clients
    except ImportError:  # pragma: no cover - clients is part of this package
        return
    close_clients()


def logger(name: str) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The Prefect run logger when called inside a flow or task run (its lines reach the UI), else `name`'s."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(name)
