"""External API probes (Hume, OpenAI, Spotify): `curl https://api.hume.ai/health` and friends.

Usage::

    status = check_external_api.fn("hume", "https://api.hume.ai/health", timeout_s=5)
    status.up        # False when refused, timed out or 5xx

A 401/403 from an API that needs a key still proves it is *up* (the guide probes Spotify's `/v1/me`
without a token): only refusal, timeout and 5xx count as down.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, SecretStr

from tasks.health import HealthProbe, ProbeFailure, probe_url

__all__ = ["ApiStatus", "check_external_api"]


class ApiStatus(BaseModel):
    name: str
    up: bool
    probe: HealthProbe


def api_status(name: str, probe: HealthProbe) -> ApiStatus:
    down = probe.failure in (
        ProbeFailure.REFUSED,
        ProbeFailure.TIMEOUT,
        ProbeFailure.ERROR,
        ProbeFailure.HTTP_5XX,
    )
    return ApiStatus(name=name, up=not down, probe=probe)


@task(name="check_external_api", cache_policy=NO_CACHE)
def check_external_api(
    name: str, health_url: str, timeout_s: float = 5.0, token: SecretStr | None = None
) -> ApiStatus:
    """Is this external API up? One probe; refused, timeout or 5xx means down."""
    del token  # health endpoints are probed unauthenticated, as the guide does
    return api_status(name, probe_url(health_url, timeout_s))
