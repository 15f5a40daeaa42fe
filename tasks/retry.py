"""Retries as a declared policy: which failures are worth another try, and how long to wait between tries.

Usage::

    @task(name="top_pods", **read_task_options(retries=3))
    def top_pods(...): ...                           # Prefect retries a read task (transient only)

    answer, attempts = retried(RETRY, lambda: post_once(...))    # raises the last failure

Reads retry on transient failures only (connection refused or reset, timeouts, 429, 5xx, and our own
errors marked `transient = True`); a 4xx, a validation error or a bug fails at once, because another
try would only hide it. Writes do not retry unless they are idempotent, or the caller first checks
that the lost attempt did not land (`before_retry`, how Slack posts avoid posting twice).
`is_transient` is the one rule set, for every client: Kubernetes (`kubeops`), HTTP, the database.

Two ways to retry, one rule set: Prefect's own task retries (`retry_if_transient`, `backoff`) for
tasks that Prefect may run again whole; `retried(policy, ...)` (the `stamina` library: bounded
attempts, exponential backoff with jitter, a 429's `Retry-After` honoured up to the policy's cap)
inside the Slack and PagerDuty calls, which must not be re-run whole.

Testing switch: `RUNBOOK_RETRY_BACKOFF_SCALE` (a float, default 1) multiplies every delay, Prefect's
and stamina's; the test suite sets it to 0 so no test ever waits for a backoff (the attempts stay as
declared). Prefect's delays are read when a task is declared, stamina's at each call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import psycopg
import stamina
from kubernetes.client.exceptions import ApiException
from prefect.cache_policies import NO_CACHE
from urllib3.exceptions import HTTPError as Urllib3Error

from tasks import runtime

__all__ = [
    "RETRY",
    "TRANSIENT_STATUS",
    "RetryPolicy",
    "backoff",
    "backoff_scale",
    "is_transient",
    "is_transient_status",
    "read_task_options",
    "retried",
    "retry_after_s",
    "retry_if_transient",
]

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Request timeout, too early, too many requests, and the 5xx that mean "not now" (not 501/505: never)."""


def backoff_scale() -> float:
    """The testing switch `RUNBOOK_RETRY_BACKOFF_SCALE` (default 1): what every delay is multiplied by."""
    return _scale()


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


def read_task_options(retries: int) -> dict[str, Any]:
    """`@task(**read_task_options(n))`: a read Prefect may run again, on transient failures only.

    One declaration for every read task (Kubernetes, Sentry): exponential backoff from 1 s with jitter,
    `retry_if_transient`, and no result cache (a read must look again).
    """
    return {
        "retries": retries,
        "retry_delay_seconds": backoff(1.0),
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": retry_if_transient,
        "cache_policy": NO_CACHE,
    }


def is_transient_status(status: int | None) -> bool:
    """True for an HTTP status that another try may fix (`TRANSIENT_STATUS`), whichever client got it."""
    return status in TRANSIENT_STATUS


def retry_after_s(response: httpx.Response) -> float | None:
    """The wait a server asked for in `Retry-After` (seconds), or None when absent or not a number."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


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


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try a call again: attempts in all, exponential backoff between them."""

    attempts: int = 3
    base_s: float = 1.0
    cap_s: float = 30.0
    """Longest single wait, also the cap on a server's `Retry-After`."""

    def wait_for(self, exc: Exception) -> bool | float:
        """stamina's `on` hook: False for a permanent failure (no retry); for a transient one the wait
        the server asked for (`retry_after_s`, capped and scaled), else True (the exponential backoff)."""
        if not is_transient(exc):
            return False
        asked = getattr(exc, "retry_after_s", None)
        if asked is not None:
            return min(self.cap_s, max(0.0, float(asked))) * _scale()
        return True


RETRY = RetryPolicy()


def retried(
    policy: RetryPolicy,
    once: Callable[[], T],
    *,
    before_retry: Callable[[Exception], T | None] | None = None,
) -> tuple[T, int]:
    """Call `once` until it succeeds, fails for good, or `policy.attempts` are spent: (answer, attempts).

    `before_retry(failure)`, if given, runs before each new attempt (after the wait) and may return the
    answer to use instead of trying again (a lost write that landed after all). The last failure is
    raised with `attempts` (the number of calls made) set on it.
    """
    scale = _scale()
    made = 0
    last: Exception | None = None
    try:
        for attempt in stamina.retry_context(
            on=policy.wait_for,
            attempts=policy.attempts,
            timeout=None,  # bounded by the attempts and each call's own timeout
            wait_initial=policy.base_s * scale,
            wait_max=policy.cap_s * scale,
            wait_jitter=policy.base_s * scale / 2,
        ):
            with attempt:
                if last is not None and before_retry is not None:
                    found = before_retry(last)
                    if found is not None:
                        return found, made
                made += 1
                try:
                    return once(), made
                except Exception as exc:
                    last = exc
                    if made < policy.attempts and policy.wait_for(exc) is not False:
                        runtime.logger(__name__).warning(
                            "%s (attempt %d of %d); retrying", exc, made, policy.attempts
                        )
                    raise
    except Exception as exc:
        if hasattr(exc, "attempts"):
            exc.attempts = made
        raise
    raise RuntimeError("unreachable: stamina either returned an answer or raised")  # pragma: no cover
