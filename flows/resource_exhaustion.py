"""Guide: P1 › Actions by Incident Type › CPU/Memory Exhaustion.

Check resource usage (`kubectl top pods --sort-by=memory`, `kubectl top nodes`); look for memory
errors in the logs (`kubectl logs deployment/emotionscare | grep -i "memory\\|OutOfMemory"`);
temporary relief: scale up (`kubectl scale deployment emotionscare --replicas=3`, never below the
current count, never past the catalogue's `kubernetes.replicas.max` for the service); wait, verify;
record the permanent fix (profiling, the leak checklist) as follow-up.
"""

from __future__ import annotations

import re
from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.guards import hold_target, reading
from flows.outages import escalates_on_outage
from flows.parameters import IncidentId, PollSeconds, Seconds, ServiceName, Summary
from flows.record import Record
from flows.steps import read_logs
from flows.targets import probe_service, target_workload, wait_healthy
from kubeops import KubernetesError
from runbook.models import DEFAULT_SERVICE, Evidence, IncidentRef, RunbookOutcome, RunbookResult
from runbook.policy import worse_after
from runbook.severity import Severity
from tasks import runtime
from tasks.kubernetes import (
    get_deployment_logs,
    get_replicas,
    scale_deployment,
    top_nodes,
    top_pods,
    wait_for_rollout,
)

__all__ = ["FOLLOW_UP", "resource_exhaustion", "scale_to"]

RUNBOOK = "resource-exhaustion"

FOLLOW_UP = """Permanent fix: find the memory leak (the guide's steps)
- [ ] Profile: `node --prof app.js`, then `node --prof-process isolate-*.log > analysis.txt`
- [ ] Check for unbound array growth
- [ ] Check for event listener leaks
- [ ] Check for circular references
- [ ] Scale back down once the fix is deployed"""

OOM_PATTERN = r"memory|OutOfMemory|OOMKilled"
FATAL_PATTERN = r"OutOfMemory|OOMKilled|heap out of memory"


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.0f}Mi"


def scale_to(rec: Record, current: int, asked: int) -> int:
    """How many replicas to scale to: `asked`, never past the service's `kubernetes.replicas.max` (the
    catalogue) and never below `current`; a bound that limits it is said in the timeline."""
    most = runtime.service().kubernetes.replicas.max
    want = max(current, min(asked, most))
    if asked > most and want < asked:
        rec.note(
            "decide",
            f"the catalogue's bound for {rec.incident.service} is {most} replicas: "
            f"scaling to {want}, not {asked}" + (" (already there)" if want == current else ""),
        )
    return want


@flow(name=RUNBOOK, description="P1 › CPU/Memory Exhaustion: top pods/nodes, OOM in logs, scale up, verify.")
@escalates_on_outage
def resource_exhaustion(
    service: ServiceName = DEFAULT_SERVICE,
    severity: Severity = Severity.P1,
    summary: Summary = "",
    incident_id: IncidentId = "",
    replicas: Annotated[int, Field(ge=1, le=100)] = 3,
    ready_deadline_s: Seconds = 300.0,
    verify_deadline_s: Seconds = 30.0,
    poll_interval_s: PollSeconds = 2.0,
    dry_run: bool = False,
    incident: IncidentRef | None = None,
) -> RunbookResult:
    """CPU/Memory Exhaustion: look (top, logs), scale up for relief, verify, leave the leak hunt as follow-up.

    Args:
        service: the service in trouble (in the form: one of the catalogue's services)
        severity: the incident's level when one is opened: P1 critical · P2 high · P3 medium · P4 low
        summary: what is wrong, in a sentence (shown in Slack)
        incident_id: an existing incident's id; empty: open (or join) one for this service and runbook
        replicas: scale to this many replicas (the guide: 3); never below the current count, never past
            the service's catalogue bound (`kubernetes.replicas.max`)
        ready_deadline_s: how long to wait for the new pods
        verify_deadline_s: how long to wait for health after scaling
        poll_interval_s: how often to look while waiting
        dry_run: record and log the plan, change nothing
        incident: Python callers: the whole incident instead of the fields above (not in the form)
    """
    rec = Record.open(
        RUNBOOK,
        IncidentRef.from_form(
            incident,
            service=service,
            severity=severity,
            summary=summary,
            incident_id=incident_id,
            default_summary="CPU/memory exhaustion",
        ),
        dry_run=dry_run,
    )
    target = target_workload()

    # Check resource usage
    try:
        pods = top_pods(target.namespace, sort_by="memory")
        nodes = top_nodes()
        rec.add_evidence(
            Evidence(
                kind="metrics",
                title="kubectl top pods --sort-by=memory",
                content="\n".join(
                    f"{p.name:<48} {p.cpu_millicores:>6}m {_mib(p.memory_bytes):>8}" for p in pods
                ),
            )
        )
        rec.add_evidence(
            Evidence(
                kind="metrics",
                title="kubectl top nodes",
                content="\n".join(
                    f"{n.name:<24} {n.cpu_millicores:>6}m {n.cpu_pct or 0:>5.0f}% "
                    f"{_mib(n.memory_bytes):>8} {n.memory_pct or 0:>5.0f}%"
                    for n in nodes
                ),
            )
        )
        top = pods[0] if pods else None
        rec.note(
            "assess", f"top pod by memory: {top.name} {_mib(top.memory_bytes)}" if top else "no pod metrics"
        )
    except KubernetesError as exc:
        rec.note("assess", f"metrics unavailable: {exc}")

    # Memory errors in the logs
    oom_lines: list[str] = []
    logs = read_logs(rec, target, "assess", grep=OOM_PATTERN)
    if logs is not None:
        oom_lines = logs.matches
        rec.add_evidence(
            Evidence(
                kind="logs",
                title=f'kubectl logs {logs.pod} | grep -i "memory\\|OutOfMemory"',
                content="\n".join(oom_lines) or "(no match)",
            )
        )
        rec.note(
            "assess", f"{len(oom_lines)} memory/OutOfMemory lines in the last 100 log lines of {logs.pod}"
        )
    # A container the kernel killed for memory was restarted: its last words are in the previous log.
    if not any(re.search(FATAL_PATTERN, line, re.IGNORECASE) for line in oom_lines):
        try:
            before = get_deployment_logs(target, tail_lines=100, grep=OOM_PATTERN, previous=True)
            if before.matches:
                oom_lines += before.matches
                rec.add_evidence(
                    Evidence(
                        kind="logs",
                        title=f'kubectl logs {before.pod} --previous | grep -i "memory\\|OutOfMemory"',
                        content="\n".join(before.matches),
                    )
                )
                rec.note(
                    "assess", f"{len(before.matches)} memory lines in the previous container of {before.pod}"
                )
            else:
                rec.note(
                    "assess",
                    f"no memory line in the last {len(before.lines)} lines of the previous container of "
                    f"{before.pod}",
                )
        except KubernetesError as exc:  # no previous container (never restarted), or the API failed
            rec.note("assess", f"previous container's logs unavailable: {exc}")

    # Temporary relief: scale up (never below the current count, never past the catalogue's max), the
    # target's lease held (flows/guards.py)
    current = get_replicas(target)
    want = scale_to(rec, current.desired, replicas)
    at = f"already at {current.desired} replicas (not scaled)"
    if want == current.desired:
        rec.note("decide", f"already at {current.desired} replicas (>= {min(replicas, want)}): not scaling")
    else:
        plan = f"kubectl scale deployment {target.name} --replicas={want} (from {current.desired})"
        with hold_target(rec, target, f"scale: {plan}") as hold:
            if hold.waited:  # another remediation changed the target meanwhile: look again from scratch
                again = probe_service()
                rec.note("reassess", f"looked again from scratch after the wait: {again.summary()}")
                if again.healthy or not hold.held:
                    rec.add_evidence(Evidence(kind="follow-up", title="permanent fix", content=FOLLOW_UP))
                    state = "healthy now" if again.healthy else "still unhealthy"
                    outcome = RunbookOutcome.MITIGATED if again.healthy else RunbookOutcome.ESCALATED
                    return rec.finish(outcome, f"{hold.why()}; {state}: nothing written")
                current = get_replicas(target)
                want = scale_to(rec, current.desired, replicas)
                plan = f"kubectl scale deployment {target.name} --replicas={want} (from {current.desired})"
            health_before = reading() if not rec.dry_run and want != current.desired else None
            done = (
                rec.act(
                    "scale",
                    f"{target.namespace}/deployment/{target.name}",
                    lambda: scale_deployment(target, want),
                    plan,
                )
                if want != current.desired
                else None
            )
            if done is None:
                rec.note("decide", f"already at {current.desired} replicas after the wait: not scaling")
            elif done.error is not None:
                rec.add_evidence(Evidence(kind="follow-up", title="permanent fix", content=FOLLOW_UP))
                return rec.finish(RunbookOutcome.ESCALATED, f"scaling failed: {done.error}; escalated")
            elif done.dry_run:
                rec.add_evidence(Evidence(kind="follow-up", title="permanent fix", content=FOLLOW_UP))
                return rec.finish(RunbookOutcome.MITIGATED, plan)
            elif done.refused:
                at = f"at {current.desired} replicas (not scaled again: an earlier run of this incident scaled up)"
            else:
                at = f"scaled to {want} replicas"
                failed = ""
                try:
                    status = wait_for_rollout(
                        target, deadline_s=ready_deadline_s, poll_interval_s=poll_interval_s
                    )
                    rec.note("verify", f"rollout: {status.message}")
                except KubernetesError as exc:
                    failed = str(exc)
                    rec.note("verify", f"scale-up did not complete: {exc}")
                after = reading()
                if health_before is not None and worse_after(
                    health_before.failing, after.failing, rollout_failed=bool(failed)
                ):
                    back = f"kubectl scale deployment {target.name} --replicas={current.desired}"
                    readings = f"before: {health_before.line()}; after: {after.line()}"
                    rec.note("decide", f"the scale-up made it worse ({readings}) → restore once: {back}")
                    undone = rec.act(
                        "restore",
                        f"{target.namespace}/deployment/{target.name}",
                        lambda: scale_deployment(target, current.desired),
                        back,
                    )
                    put_back = "restored" if undone.ok else f"restore not done ({undone.record.status.value})"
                    rec.add_evidence(Evidence(kind="follow-up", title="permanent fix", content=FOLLOW_UP))
                    return rec.finish(
                        RunbookOutcome.ESCALATED,
                        f"{at}, but it made it worse: {put_back}; escalated ({readings})",
                    )

    # Verify, and leave the permanent fix as follow-up
    rec.add_evidence(Evidence(kind="follow-up", title="permanent fix", content=FOLLOW_UP))
    probe = probe_service()
    if not probe.healthy:
        probe = wait_healthy(verify_deadline_s, poll_interval_s)
    rec.note("verify", probe.summary())
    evidence = f"; {len(oom_lines)} OOM lines seen" if oom_lines else ""
    if probe.healthy:
        return rec.finish(RunbookOutcome.MITIGATED, f"{at}, healthy{evidence}; leak hunt open")
    return rec.finish(RunbookOutcome.ESCALATED, f"still unhealthy, {at}{evidence}; escalated")
