"""Every flow the project deploys, with the name, description and tags it is deployed under.

One list serves `python -m flows.serve`, the tests that check prefect.yaml, and the docs map.

Usage::

    for entry in entries():
        print(entry.name, entry.flow.name, entry.entrypoint)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Entry", "entries"]


@dataclass(frozen=True)
class Entry:
    name: str
    entrypoint: str
    description: str
    tags: tuple[str, ...] = ()
    cron: str | None = None
    timezone: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def deployment_options(self) -> dict[str, Any]:
        """What `flow.to_deployment(name=..., **options)` needs to match prefect.yaml (schedule included)."""
        options: dict[str, Any] = {
            "description": self.description,
            "tags": list(self.tags),
            "enforce_parameter_schema": True,
        }
        if self.cron:
            from prefect.schedules import Cron

            options["schedule"] = Cron(self.cron, timezone=self.timezone)
            options["parameters"] = self.parameters
        return options

    def to_deployment(self, services: Sequence[str]) -> Any:
        """The RunnerDeployment prefect.yaml declares, its form's `service` a choice of `services`
        (the catalogue's, flows/form.py)."""
        from flows.form import with_service_choices

        deployment = self.flow.to_deployment(name=self.name, **self.deployment_options())
        return with_service_choices(deployment, services)

    @property
    def flow(self) -> Any:
        module, attr = self.entrypoint.split(":")
        mod = __import__(module.removesuffix(".py").replace("/", "."), fromlist=[attr])
        return getattr(mod, attr)


_P1 = ("runbook", "p1")


def entries() -> list[Entry]:
    return [
        Entry("service-down", "flows/service_down.py:service_down", "P1 › Service Completely Down", _P1),
        Entry("database-lost", "flows/database_lost.py:database_lost", "P1 › Database Connection Lost", _P1),
        Entry(
            "resource-exhaustion",
            "flows/resource_exhaustion.py:resource_exhaustion",
            "P1 › CPU/Memory Exhaustion",
            _P1,
        ),
        Entry(
            "external-api-failure",
            "flows/external_api_failure.py:external_api_failure",
            "P1 › External API Failure",
            _P1,
        ),
        Entry(
            "respond",
            "flows/respond.py:respond",
            "Every incident: P1 timeline, P2 diagnosis, P3 workaround + schedule, P4 backlog; comms, escalation",
            ("respond",),
        ),
        Entry(
            "error-rate-spike",
            "flows/error_rate_spike.py:error_rate_spike",
            "P2 › Error Rate Spike (5-10%)",
            ("runbook", "p2"),
        ),
        Entry(
            "performance-degradation",
            "flows/performance_degradation.py:performance_degradation",
            "P2 › Performance Degradation (P95 > 3s)",
            ("runbook", "p2"),
        ),
        Entry(
            "feature-broken",
            "flows/feature_broken.py:feature_broken",
            "P2 › Feature Broken (but app functional)",
            ("runbook", "p2"),
        ),
        *_drills(),
    ]


def _drills() -> list[Entry]:
    """Running Incident Drill and Post-Incident (flows/drills.py, flows/postmortem.py)."""
    drill = ("drill",)
    return [
        Entry(
            "drill-database-failure",
            "flows/drills.py:drill_database_failure",
            "Drill › Database Failure",
            drill,
        ),
        Entry(
            "drill-high-error-rate", "flows/drills.py:drill_high_error_rate", "Drill › High Error Rate", drill
        ),
        Entry(
            "drill-performance-degradation",
            "flows/drills.py:drill_performance_degradation",
            "Drill › Performance Degradation",
            drill,
        ),
        Entry(
            "drill-external-api-failure",
            "flows/drills.py:drill_external_api_failure",
            "Drill › External API Failure",
            drill,
        ),
        Entry(
            "drill-monthly",
            "flows/drills.py:drill_monthly",
            "Running Incident Drill: monthly (rotate / quarterly / all)",
            drill,
            cron="0 10 1 * *",
            timezone="Europe/Paris",
            parameters={"plan": "rotate"},
        ),
        Entry(
            "postmortem",
            "flows/postmortem.py:postmortem",
            "Post-Incident: post-mortem document",
            ("post-incident",),
        ),
    ]


def flows_by_name() -> dict[str, Callable[..., Any]]:
    return {e.name: e.flow for e in entries()}
