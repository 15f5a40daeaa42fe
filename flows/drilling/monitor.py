"""What the drill's monitor sees (the scenario's symptom, as production monitoring would), the drill's own
log (its report's timeline, mirrored to the incident's), and the timer that ends an outage.

Usage::

    obs = watch(s, until_bad=True, deadline_s=120, poll_interval_s=1)     # bounded
    log = DrillLog(); log.note("inject", "...")
    lifter = Lifter(target, s.fault, delay_s=60).start()
"""

from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from prefect import get_run_logger

from flows.drilling.options import ACTOR
from runbook.drills import Scenario, Symptom
from runbook.models import TimelineEntry, utc_now
from tasks import runtime
from tasks.drill_targets import FaultTarget
from tasks.health import HealthProbe, probe_url

__all__ = ["DrillLog", "Lifter", "Observation", "observe", "watch"]


# --- what the drill's monitor sees ------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    at: datetime
    bad: bool
    detail: str


def observe(s: Scenario, *, recovery: bool = False) -> Observation:
    """One look at the scenario's symptom, as monitoring would take it (plain HTTP, no Prefect task:
    it runs in a poll loop). With `recovery`, "good" also needs the service healthy and, for an API
    outage, the feature back on."""
    settings = runtime.settings()
    svc = settings.service
    timeout = svc.http_timeout_s
    base = str(svc.base_url).rstrip("/")
    health = probe_url(base + svc.health_path, timeout)
    api_health = probe_url(base + svc.api_health_path, timeout)
    service_ok = health.ok and api_health.ok
    service_line = f"/health {_answer(health)}, /api/health {_answer(api_health)}"
    if s.symptom == Symptom.SERVICE:
        return Observation(utc_now(), not service_ok, service_line)
    if s.symptom == Symptom.API:
        api = settings.api(s.symptom_arg or "")
        probe = probe_url(str(api.health_url), timeout)
        if not recovery:
            return Observation(utc_now(), not probe.ok, f"{api.name} {_answer(probe)}")
        flag = _flag_value(api.feature_flag)
        good = probe.ok and service_ok and flag != "false"
        return Observation(
            utc_now(),
            not good,
            f"{api.name} {_answer(probe)}; {api.feature_flag}={flag}; {service_line}",
        )
    # Symptom.LATENCY: a synthetic check of the endpoint (the journal), timed as a user would feel it
    probe = probe_url(
        base + (s.symptom_arg or svc.api_health_path), max(timeout, s.latency_threshold_ms / 500)
    )
    slow = probe.status_code is None or probe.latency_ms > s.latency_threshold_ms
    detail = f"{s.symptom_arg} {_answer(probe)} in {probe.latency_ms:.0f} ms (threshold {s.latency_threshold_ms:.0f} ms)"
    return Observation(utc_now(), slow or (recovery and not service_ok), detail)


def _answer(probe: HealthProbe) -> str:
    return str(probe.status_code) if probe.status_code is not None else probe.failure.value


def _flag_value(flag: str) -> str | None:
    from flows.targets import target_workload
    from tasks.feature_flags import flag_backend

    return flag_backend(target_workload()).get(flag)


def watch(
    s: Scenario, *, until_bad: bool, deadline_s: float, poll_interval_s: float, recovery: bool = False
) -> Observation:
    """Observe every `poll_interval_s` until the symptom is there (`until_bad`) or gone; bounded."""
    deadline = time.monotonic() + deadline_s
    while True:
        obs = observe(s, recovery=recovery)
        if obs.bad == until_bad or time.monotonic() + poll_interval_s > deadline:
            return obs
        time.sleep(poll_interval_s)


# --- the drill's own record -------------------------------------------------------------------------------


@dataclass
class DrillLog:
    """The drill's timeline (its report), mirrored to the incident's once there is one, and logged."""

    entries: list[TimelineEntry] = field(default_factory=list)
    incident_id: str | None = None

    def note(self, kind: str, message: str, actor: str = ACTOR, at: datetime | None = None) -> TimelineEntry:
        entry = TimelineEntry(at=at or utc_now(), actor=actor, kind=kind, message=message)
        self.entries.append(entry)
        get_run_logger().info("[%s] %s", kind, message)
        if self.incident_id is not None:
            runtime.store().append_timeline(self.incident_id, entry)
        return entry


class Lifter:
    """Ends an outage after `outage_s` from injection, from a thread (the runbook keeps polling meanwhile)."""

    def __init__(self, target: FaultTarget, fault: str, delay_s: float) -> None:
        self.target = target
        self.fault = fault
        self.delay_s = delay_s
        self.lifted_at: datetime | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        # with the drill's context: its flow run, so the service it is bound to (tasks/runtime.py)
        ctx = contextvars.copy_context()
        self._thread = threading.Thread(target=ctx.run, args=(self._run,), name="drill-lifter", daemon=True)

    def start(self) -> Lifter:
        self._thread.start()
        return self

    def _run(self) -> None:
        if self._stop.wait(self.delay_s):
            return
        try:
            self.target.lift(self.fault)
            self.lifted_at = utc_now()
        except Exception as exc:  # kept and reported by the drill; the final clear runs regardless
            self.error = f"{type(exc).__name__}: {exc}"

    def wait(self, timeout_s: float) -> None:
        """Let the outage run its course (bounded): the drill verifies recovery after it."""
        self._thread.join(timeout_s)

    def finish(self) -> None:
        """Stop waiting (if it has not lifted yet, it never will: the final clear follows) and join."""
        self._stop.set()
        self._thread.join(5.0)
