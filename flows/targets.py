"""What the runbooks act on: the bound service's Deployment and URLs (the incident's service, bound by
`flows.record.Record.open`; `tasks.runtime.settings()` is that service's view of the settings).

Usage::

    target = target_workload()      # Workload(namespace="prod", name="emotionscare")
    probe = probe_service()         # tasks.health.check_service on /health and /api/health
"""

from __future__ import annotations

from kubeops.models import Workload
from tasks import runtime
from tasks.health import ServiceProbe, check_service, wait_until_healthy

__all__ = ["base_url", "probe_service", "target_workload", "wait_healthy"]


def target_workload() -> Workload:
    k = runtime.settings().kubernetes
    return Workload(namespace=k.namespace, name=k.deployment, container=k.container)


def base_url() -> str:
    return str(runtime.settings().service.base_url).rstrip("/")


def probe_service() -> ServiceProbe:
    s = runtime.settings().service
    return check_service(base_url(), s.health_path, s.api_health_path, s.http_timeout_s)


def wait_healthy(deadline_s: float, poll_interval_s: float) -> ServiceProbe:
    """Probe until both health endpoints answer 200, or the deadline passes (bounded)."""
    s = runtime.settings().service
    return wait_until_healthy(
        base_url(), s.health_path, s.api_health_path, deadline_s, poll_interval_s, s.http_timeout_s
    )
