"""P1 › CPU/Memory Exhaustion, against the sandbox's cluster (metrics.k8s.io, pod logs, /scale)."""

from __future__ import annotations

import kubeops
from flows.resource_exhaustion import FOLLOW_UP, resource_exhaustion
from flows.targets import target_workload
from runbook.models import ActionStatus, IncidentRef, RunbookOutcome
from tasks import runtime
from tasks.clients import kubernetes_api

FAST = dict(ready_deadline_s=15.0, verify_deadline_s=5.0, poll_interval_s=0.05)


def test_a_leaking_deployment_is_scaled_to_3_with_oom_evidence(world) -> None:
    world.inject("memory-leak")
    world.step(20)  # the leak reaches the 512Mi limit: OOM lines, a restart with reason OOMKilled
    assert world.deployment()["spec"]["replicas"] == 2

    result = resource_exhaustion(**FAST)

    assert result.outcome == RunbookOutcome.MITIGATED, result.summary
    assert world.deployment()["spec"]["replicas"] == 3
    assert result.summary.startswith("scaled to 3 replicas, healthy")
    assert [(a.action, a.status) for a in result.actions] == [("scale", ActionStatus.SUCCEEDED)]
    logs = "\n".join(e.content for e in result.evidence if e.kind == "logs")
    seen = [e.message for e in result.timeline if e.kind == "assess"]  # what it read, and what failed
    assert "OutOfMemory" in logs or "heap out of memory" in logs, (seen, logs[-800:])
    top = next(e for e in result.evidence if e.title == "kubectl top pods --sort-by=memory")
    assert "emotionscare-" in top.content and "Mi" in top.content
    assert any(e.title == "kubectl top nodes" for e in result.evidence)
    assert any(e.content == FOLLOW_UP for e in result.evidence)  # the leak hunt, as follow-up items
    assert "OOM lines seen" in result.summary


def test_never_scales_below_the_current_count(world) -> None:
    world.inject("cpu-hog")
    kubeops.scale(kubernetes_api(runtime.settings()), target_workload(), 5)
    world.wait_healthy(15)

    result = resource_exhaustion(**FAST)

    assert world.deployment()["spec"]["replicas"] == 5
    assert result.actions == []
    assert "already at 5 replicas" in " ".join(e.message for e in result.timeline)
    assert "already at 5 replicas (not scaled)" in result.summary and "scaled to" not in result.summary


def test_a_second_run_does_not_scale_again(world) -> None:
    world.inject("memory-leak")
    first = resource_exhaustion(**FAST)
    kubeops.scale(
        kubernetes_api(runtime.settings()), target_workload(), 2
    )  # someone scaled back down by hand during the incident
    world.wait_healthy(15)

    second = resource_exhaustion(incident=IncidentRef(incident_id=first.incident_id), **FAST)

    assert [(a.action, a.status) for a in second.actions] == [("scale", ActionStatus.REFUSED)]
    assert world.deployment()["spec"]["replicas"] == 2
    assert "scaled to" not in second.summary and "not scaled again" in second.summary
