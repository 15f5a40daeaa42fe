"""Guide: P1 › Timeline › Minute 1-2: Assessment. Sentry's latest error and stack trace; application
crash, database, external API or infrastructure (`runbook.policy.FAILURE_RULES`); CPU, memory, disk,
network latency; and whether code was deployed recently.

Usage::

    found = assess(rec, incident, rollback_window_min=15)
    comms.post("assessment", found.text())
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from flows.diagnoses import Infrastructure, check_infrastructure
from flows.record import Record
from flows.steps import recent_deploys, sentry_evidence
from flows.targets import probe_service, target_workload
from runbook.models import Evidence, Incident, utc_now
from runbook.policy import FailureKind, FailureRule, Observed, classify_failure
from tasks import runtime
from tasks.external_apis import ApiStatus, check_external_api
from tasks.health import ServiceProbe, Verdict

__all__ = ["Assessment", "FailureKind", "assess"]


class Assessment(BaseModel):
    kind: FailureKind
    why: str
    runbook: str
    probe: ServiceProbe
    infra: Infrastructure
    apis_down: list[str] = Field(default_factory=list)
    sentry_error: str = ""
    sentry_stack: list[str] = Field(default_factory=list)
    sentry_users: int = 0
    deployed: str = ""
    recent_deploy: bool = False
    revision: int | None = None
    images: list[str] = Field(default_factory=list)

    def text(self) -> str:
        """The thread message: what failed, Sentry's error and stack, deploys, system metrics."""
        cpu = f"{self.infra.cpu_pct:.0f}%" if self.infra.cpu_pct is not None else "not reported"
        mem = f"{self.infra.memory_pct:.0f}%" if self.infra.memory_pct is not None else "not reported"
        lines = [
            "Assessment (minute 1-2)",
            f"- Failure: {self.kind.value}: {self.why}",
            f"- Sentry: {self.sentry_error or 'no unresolved error'}",
            *[f"    {frame}" for frame in self.sentry_stack[-5:]],
            f"- Deploy: {self.deployed or 'unknown'}",
            f"- System: CPU {cpu}, memory {mem} (busiest node); disk space: not reported by the metrics API; "
            f"network latency: /health {self.probe.health.latency_ms:.0f} ms",
        ]
        if self.apis_down:
            lines.append(f"- External APIs down: {', '.join(self.apis_down)}")
        return "\n".join(lines)

    def root_cause(self) -> str:
        """What the all-clear gives as the root cause when automation fixed it."""
        if self.recent_deploy and self.kind == FailureKind.APPLICATION_CRASH:
            return (
                f"Bad deploy: revision {self.revision} ({', '.join(self.images)}): "
                f"{self.sentry_error or self.why}"
            )
        return f"{self.kind.value.capitalize()}: {self.why}"


def _why(rule: FailureRule, probe: ServiceProbe, infra: Infrastructure, down: list[str]) -> str:
    """The assessment's reason: the observation behind the rule that decided (its first fact)."""
    fact = rule.when[0] if rule.when else None
    if fact == "database_down":
        return f"SELECT 1 fails ({infra.line()})"
    if fact == "unreachable":
        return f"/health {probe.health.failure.value}: {probe.health.line()}"
    if fact == "app_failing" and rule.kind == FailureKind.DATABASE:
        return f"/api/health 500: {probe.api_health.detail[:200]}"
    if fact == "app_failing":
        return f"/api/health {probe.api_health.status_code} while /health answers"
    if fact == "apis_down":
        return f"{', '.join(down)} down"
    if fact == "saturated":
        return f"resources under pressure: {infra.line()}"
    return f"both health endpoints answer ({probe.summary()})"


def _names_database(probe: ServiceProbe) -> bool:
    detail = probe.api_health.detail.lower()
    return "database" in detail or "pool" in detail


def assess(rec: Record, incident: Incident, rollback_window_min: int = 15) -> Assessment:
    """Minute 1-2: Sentry, the kind of failure from the probes, system metrics, recent deploys."""
    target = target_workload()
    settings = runtime.settings()
    probe = probe_service()
    rec.add_evidence(Evidence(kind="health", title="health probes", content=probe.summary()))
    infra = check_infrastructure(rec, target)
    apis: list[ApiStatus] = [
        check_external_api(a.name, str(a.health_url), settings.service.http_timeout_s)
        for a in settings.external_apis
    ]
    down = [a.name for a in apis if not a.up]
    issues = sentry_evidence(rec, "assess")
    latest = next((e for e in rec.evidence if e.title.startswith("Sentry: latest event")), None)
    deploy = recent_deploys(rec, target, rollback_window_min)
    rule = classify_failure(
        Observed(
            database_down=infra.database_down,
            unreachable=probe.verdict == Verdict.INFRASTRUCTURE,
            app_failing=probe.verdict == Verdict.APPLICATION,
            app_database=_names_database(probe),
            apis_down=bool(down),
            saturated=infra.saturated,
        )
    )
    why = _why(rule, probe, infra, down)
    found = Assessment(
        kind=rule.kind,
        why=why,
        runbook=rule.runbook,
        probe=probe,
        infra=infra,
        apis_down=down,
        sentry_error=f"{issues[0].title} ({issues[0].culprit})" if issues else "",
        sentry_stack=(latest.data or {}).get("frames", []) if latest else [],
        sentry_users=issues[0].user_count if issues else 0,
        deployed=deploy.line(utc_now()),
        recent_deploy=deploy.recent,
        revision=deploy.current.revision if deploy.current else None,
        images=deploy.current.images if deploy.current else [],
    )
    rec.note(
        "assess", f"{rule.kind.value}: {why}", evidence={"kind": rule.kind.value, "runbook": rule.runbook}
    )
    return found
