"""Health probes over HTTP (httpx): status, latency, and *how* it failed — refused, timeout or 5xx.

Usage::

    probe = check_service.fn("https://emotionscare.com", "/health", "/api/health", timeout_s=5)
    probe.verdict      # Verdict.HEALTHY | INFRASTRUCTURE | APPLICATION

The guide's Step 1 of "Service Completely Down": `curl /health` timing out or refused means an
infrastructure issue; `/api/health` answering 500 means an application issue. A probe never raises
for a down service: being down is the answer, recorded as data. Only a bug raises.
"""

from __future__ import annotations

import time
from enum import StrEnum

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.clients import new_http_client

__all__ = [
    "HealthProbe",
    "ProbeFailure",
    "ServiceProbe",
    "Verdict",
    "check_service",
    "probe_url",
    "wait_until_healthy",
]


class ProbeFailure(StrEnum):
    NONE = "none"
    REFUSED = "refused"  # nothing listens: connection refused or reset
    TIMEOUT = "timeout"  # connect or read timed out
    HTTP_5XX = "http_5xx"
    HTTP_4XX = "http_4xx"
    ERROR = "error"  # DNS, TLS, protocol: the network path itself


class HealthProbe(BaseModel):
    """One GET of one URL."""

    url: str
    ok: bool
    status_code: int | None = None
    latency_ms: float
    failure: ProbeFailure = ProbeFailure.NONE
    detail: str = ""

    def line(self) -> str:
        code = self.status_code if self.status_code is not None else self.failure.value
        return f"GET {self.url} → {code} in {self.latency_ms:.0f} ms"


class Verdict(StrEnum):
    HEALTHY = "healthy"
    INFRASTRUCTURE = "infrastructure"  # /health refused or timed out
    APPLICATION = "application"  # /health answers but /api/health returns 5xx
    UNKNOWN = "unknown"  # e.g. 4xx: neither rule of the guide applies


class ServiceProbe(BaseModel):
    """Step 1 of "Service Completely Down": both health endpoints and what they say together."""

    health: HealthProbe
    api_health: HealthProbe
    verdict: Verdict

    @property
    def healthy(self) -> bool:
        return self.verdict == Verdict.HEALTHY

    def summary(self) -> str:
        return f"{self.verdict.value}: {self.health.line()}; {self.api_health.line()}"


def probe_url(url: str, timeout_s: float, client: httpx.Client | None = None) -> HealthProbe:
    """GET `url` once and classify the answer; never raises for a failing service."""
    start = time.perf_counter()
    own = client is None
    http = client or new_http_client(timeout_s)
    try:
        response = http.get(url, timeout=timeout_s)
    except httpx.ConnectError as exc:
        # ConnectError covers refused and unreachable; a timeout is its own class below.
        failure = ProbeFailure.REFUSED if _refused(exc) else ProbeFailure.ERROR
        return _failed(url, start, failure, exc)
    except httpx.TimeoutException as exc:
        return _failed(url, start, ProbeFailure.TIMEOUT, exc)
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:  # reset mid-answer: nothing serving
        return _failed(url, start, ProbeFailure.REFUSED, exc)
    except httpx.TransportError as exc:
        return _failed(url, start, ProbeFailure.ERROR, exc)
    finally:
        if own:
            http.close()
    latency = (time.perf_counter() - start) * 1000
    code = response.status_code
    failure = ProbeFailure.NONE
    if code >= 500:
        failure = ProbeFailure.HTTP_5XX
    elif code >= 400:
        failure = ProbeFailure.HTTP_4XX
    return HealthProbe(
        url=url,
        ok=failure == ProbeFailure.NONE,
        status_code=code,
        latency_ms=latency,
        failure=failure,
        detail=response.text[:300],
    )


def _refused(exc: httpx.ConnectError) -> bool:
    text = str(exc).lower()
    return "refused" in text or "reset" in text or isinstance(exc.__cause__, ConnectionRefusedError)


def _failed(url: str, start: float, failure: ProbeFailure, exc: Exception) -> HealthProbe:
    return HealthProbe(
        url=url,
        ok=False,
        latency_ms=(time.perf_counter() - start) * 1000,
        failure=failure,
        detail=f"{type(exc).__name__}: {exc}"[:300],
    )


def judge(health: HealthProbe, api_health: HealthProbe) -> Verdict:
    """The guide's rule: timeout/refused on /health → infrastructure; 5xx on /api/health → application."""
    if health.failure in (ProbeFailure.REFUSED, ProbeFailure.TIMEOUT, ProbeFailure.ERROR):
        return Verdict.INFRASTRUCTURE
    if health.failure == ProbeFailure.HTTP_5XX or api_health.failure == ProbeFailure.HTTP_5XX:
        return Verdict.APPLICATION
    if api_health.failure in (ProbeFailure.REFUSED, ProbeFailure.TIMEOUT, ProbeFailure.ERROR):
        return Verdict.INFRASTRUCTURE
    if health.ok and api_health.ok:
        return Verdict.HEALTHY
    return Verdict.UNKNOWN


@task(name="check_service", cache_policy=NO_CACHE)
def check_service(
    base_url: str, health_path: str, api_health_path: str, timeout_s: float = 5.0
) -> ServiceProbe:
    """Step 1: `curl /health` (timeout/refused → infra) and `curl /api/health` (500 → app)."""
    base = base_url.rstrip("/")
    with new_http_client(timeout_s) as http:
        health = probe_url(base + health_path, timeout_s, http)
        api_health = probe_url(base + api_health_path, timeout_s, http)
    return ServiceProbe(health=health, api_health=api_health, verdict=judge(health, api_health))


@task(name="wait_until_healthy", cache_policy=NO_CACHE)
def wait_until_healthy(
    base_url: str,
    health_path: str,
    api_health_path: str,
    deadline_s: float,
    poll_interval_s: float,
    timeout_s: float = 5.0,
) -> ServiceProbe:
    """Probe until healthy or the deadline passes; returns the last probe either way (bounded)."""
    deadline = time.monotonic() + deadline_s
    while True:
        probe = check_service.fn(base_url, health_path, api_health_path, timeout_s)
        if probe.healthy or time.monotonic() + poll_interval_s > deadline:
            return probe
        time.sleep(poll_interval_s)
