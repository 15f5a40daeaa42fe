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
import psycopg
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

__all__ = ["TRANSIENT_STATUS", "backoff", "is_transient", "is_transient_status", "retry_if_transient"]

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Request timeout, too early, too many requests, and the 5xx that mean "not now" (not 501/505: never)."""


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


def is_transient_status(status: int | None) -> bool:
    """True for an HTTP status that another try may fix (`TRANSIENT_STATUS`), whichever client got it."""
    return status in TRANSIENT_STATUS


def is_transient(exc: BaseException) -> bool:
    """True for failures that another try may fix: the network, the other side overloaded or restarting.

    The one rule set for every client: Kubernetes (`kubeops`), HTTP (Slack, PagerDuty, Sentry, health)
    and the database. Our own errors say it themselves (`transient = True`, e.g. `SlackFailed`,
    `kubeops.KubernetesUnavailable`); a raw client exception is judged by its status or its kind.
    """
    if getattr(exc, "transient", False):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return is_transient_status(exc.response.status_code)
    if isinstance(exc, httpx.TransportError):  # connect/read/write errors and timeouts
        return True
    if isinstance(exc, ApiException):  # status 0: the Kubernetes client got no answer at all
        return exc.status == 0 or is_transient_status(exc.status)
    return isinstance(exc, Urllib3Error | ConnectionError | TimeoutError | psycopg.OperationalError)


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only when the failure is transient."""
    try:
        state.result()
    except BaseException as exc:  # the task's own failure, re-raised by result()
        return is_transient(exc)
    return False
