"""Writes to the service under care over its own HTTP API: reset the DB pool, notify users.

Usage::

    reset_db_pool.fn("https://emotionscare.com", "/admin/reset-db-pool", admin_token=None)
    notify_users.fn("https://emotionscare.com", "/api/notifications",
                    {"type": "maintenance", "feature": "music"})

The guide runs the pool reset as `kubectl exec deployment/emotionscare -- curl
localhost:3000/admin/reset-db-pool`; here it is the same admin call made over HTTP to the service
(no shell, no exec channel to secure). Neither write is retried by Prefect: a reset or a notification
sent twice is not what anyone wants, so a failure is reported and the flow decides.
"""

from __future__ import annotations

from typing import Any

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, SecretStr

from runbook.errors import RunbookError
from tasks.clients import new_http_client

__all__ = ["ServiceCallFailed", "ServiceWrite", "notify_users", "reset_db_pool"]


class ServiceCallFailed(RunbookError):
    """The service refused or failed an admin/notification call."""


class ServiceWrite(BaseModel):
    url: str
    status_code: int
    body: dict[str, Any] | str


def _post(
    url: str, payload: dict[str, Any] | None, token: SecretStr | None, timeout_s: float
) -> ServiceWrite:
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    try:
        with new_http_client(timeout_s) as http:
            response = http.post(url, json=payload or {}, headers=headers)
    except httpx.TransportError as exc:
        raise ServiceCallFailed(f"POST {url}: {type(exc).__name__}: {exc}") from exc
    try:
        body: dict[str, Any] | str = response.json()
    except ValueError:
        body = response.text[:500]
    if response.status_code >= 400:
        raise ServiceCallFailed(f"POST {url} → {response.status_code}: {str(body)[:300]}")
    return ServiceWrite(url=url, status_code=response.status_code, body=body)


@task(name="reset_db_pool", cache_policy=NO_CACHE)
def reset_db_pool(
    base_url: str, path: str, admin_token: SecretStr | None = None, timeout_s: float = 10.0
) -> ServiceWrite:
    """Option 1 of "Database Connection Lost": restart the connection pool."""
    return _post(base_url.rstrip("/") + path, None, admin_token, timeout_s)


@task(name="notify_users", cache_policy=NO_CACHE)
def notify_users(
    base_url: str, path: str, notification: dict[str, Any], timeout_s: float = 10.0
) -> ServiceWrite:
    """`curl -X POST /api/notifications -d '{"type":"maintenance","feature":"music"}'`."""
    return _post(base_url.rstrip("/") + path, notification, None, timeout_s)
