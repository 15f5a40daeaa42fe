"""Retries as a declared policy: which failures are worth another try, and how long to wait between tries.

Usage::

    @task(retries=3, retry_delay_seconds=backoff(1.0), retry_jitter_factor=0.5,
          retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
    def check_service(...): ...

Reads retry on transient failures only (connection refused or reset, timeouts, 429, 5xx, and our own
errors marked `transient = True`); a 4xx, a validation error or a bug fails at once, because another
try would only hide it. Writes do not retry unless they are idempotent.

Testing switch: `RUNBOOK_RETRY_BACKOFF_SCALE` (a float, default 1) multiplies every delay; the test
suite sets it to 0 so no test ever waits for a backoff. It is read when a task is declared.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["backoff", "is_transient", "retry_if_transient"]

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _scale() -> float:
    raw = os.environ.get("RUNBOOK_RETRY_BACKOFF_SCALE", "1")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"RUNBOOK_RETRY_BACKOFF_SCALE: not a number (got {raw!r})") from None
    if value < 0:
        raise ValueError(f"RUNBOOK_RETRY_BACKOFF_SCALE: must be >= 0 (got {raw!r})")
    return value


def backoff(base_s: float, cap_s: float = 60.0) -> Callable[[int], list[float]]:
    """Exponential delays base, 2·base, 4·base … (capped), scaled by the testing switch."""

    def delays(retries: int) -> list[float]:
        scale = _scale()
        return [min(cap_s, base_s * 2**n) * scale for n in range(min(retries, 50))]

    return delays


def is_transient(exc: BaseException) -> bool:
    """True for failures that another try may fix: the network, the other side overloaded or restarting."""
    if getattr(exc, "transient", False):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in _TRANSIENT_STATUS
    if isinstance(exc, httpx.TransportError):  # connect/read/write errors and timeouts
        return True
    try:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error
    except ImportError:  # pragma: no cover - both are dependencies
        return False
    if isinstance(exc, ApiException):
        return exc.status in _TRANSIENT_STATUS or exc.status == 0
    if isinstance(exc, Urllib3Error):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, psycopg.OperationalError)


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only when the failure is transient."""
    try:
        state.result()
    except BaseException as exc:  # the task's own failure, re-raised by result()
        return is_transient(exc)
    return False
