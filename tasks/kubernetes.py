"""Kubernetes reads and writes as Prefect tasks, over `kubeops` (kubectl's algorithms, official client).

Usage (inside a flow)::

    target = Workload(namespace="prod", name="emotionscare")
    history = get_rollout_history(target)          # reads retry on transient failures, never cached
    facts = get_rollout_facts(target)              # ... with when each revision became live
    undo = rollout_undo(target, to_revision=2, expect_revision=3)   # writes never retry: the record decides
    status = wait_for_rollout(target, deadline_s=300, poll_interval_s=2)

The client is the bound service's cluster's (`tasks.clients.cluster_api` on `tasks.runtime.settings()`,
the incident's service's view): a task never reaches another cluster; nothing here takes a credential.
Reads use `cache_policy=NO_CACHE` (a cached status read would make a poll loop never see progress).
"""

from __future__ import annotations

from typing import Literal

from kubernetes.client import ApiClient
from prefect import task
from prefect.cache_policies import NO_CACHE

import kubeops
from kubeops.models import (
    DeploymentLogs,
    EnvChange,
    EventInfo,
    NodeUsage,
    PodUsage,
    Replicas,
    Revision,
    RolloutFacts,
    RolloutStatus,
    ScaleResult,
    UndoResult,
    Workload,
)
from kubeops.rollout import rollout_facts
from tasks import runtime
from tasks.clients import cluster_api
from tasks.retry import read_task_options

__all__ = [
    "get_deployment_env",
    "get_deployment_logs",
    "get_replicas",
    "get_rollout_facts",
    "get_rollout_history",
    "list_events",
    "rollout_undo",
    "scale_deployment",
    "set_deployment_env",
    "top_nodes",
    "top_pods",
    "wait_for_rollout",
]

_READ = read_task_options(retries=3)


def _api() -> ApiClient:
    return cluster_api(runtime.settings())


@task(name="get_rollout_history", **_READ)
def get_rollout_history(target: Workload) -> list[Revision]:
    """`kubectl rollout history deployment/X`, with each revision's creation time."""
    return kubeops.rollout_history(_api(), target)


@task(name="get_rollout_facts", **_READ)
def get_rollout_facts(target: Workload) -> RolloutFacts:
    """The rollout history with when each revision became live, its ready pods, and since when the
    Deployment has been Available: what a runbook decides a rollback on."""
    return rollout_facts(_api(), target)


@task(name="wait_for_rollout", cache_policy=NO_CACHE)
def wait_for_rollout(target: Workload, deadline_s: float, poll_interval_s: float) -> RolloutStatus:
    """`kubectl get pods` until the rollout completes: bounded by `deadline_s` (raises RolloutTimedOut)."""
    return kubeops.wait_for_rollout(_api(), target, deadline_s=deadline_s, poll_interval_s=poll_interval_s)


@task(name="rollout_undo", cache_policy=NO_CACHE)
def rollout_undo(target: Workload, to_revision: int = 0, expect_revision: int | None = None) -> UndoResult:
    """`kubectl rollout undo deployment/X [--to-revision=N]`, only while `expect_revision` is live (when
    given: `RevisionChanged` otherwise, nothing written). Never retried."""
    return kubeops.rollout_undo(_api(), target, to_revision=to_revision, expect_revision=expect_revision)


@task(name="scale_deployment", cache_policy=NO_CACHE)
def scale_deployment(target: Workload, replicas: int) -> ScaleResult:
    """`kubectl scale deployment X --replicas=N` (idempotent: same count, no change)."""
    return kubeops.scale(_api(), target, replicas)


@task(name="set_deployment_env", cache_policy=NO_CACHE)
def set_deployment_env(target: Workload, env: dict[str, str | None]) -> EnvChange:
    """`kubectl set env deployment/X K=V` (idempotent: already set, no patch)."""
    return kubeops.set_env(_api(), target, env)


@task(name="get_deployment_env", **_READ)
def get_deployment_env(target: Workload) -> dict[str, str]:
    return kubeops.get_deployment_env(_api(), target)


@task(name="get_replicas", **_READ)
def get_replicas(target: Workload) -> Replicas:
    return kubeops.get_replicas(_api(), target)


@task(name="get_deployment_logs", **_READ)
def get_deployment_logs(
    target: Workload, tail_lines: int = 100, grep: str | None = None, previous: bool = False
) -> DeploymentLogs:
    """`kubectl logs deployment/X --tail=100 [--previous]` (kubectl's pod choice), optionally `| grep -i`."""
    return kubeops.deployment_logs(_api(), target, tail_lines=tail_lines, grep=grep, previous=previous)


@task(name="list_events", **_READ)
def list_events(namespace: str, involved_name: str | None = None, limit: int = 20) -> list[EventInfo]:
    """`kubectl get events --sort-by=.lastTimestamp` (newest last), for one object or the namespace."""
    return kubeops.list_events(_api(), namespace, involved_name=involved_name, limit=limit)


@task(name="top_pods", **_READ)
def top_pods(namespace: str, sort_by: Literal["memory", "cpu"] = "memory") -> list[PodUsage]:
    """`kubectl top pods --sort-by=memory`."""
    return kubeops.top_pods(_api(), namespace, sort_by=sort_by)


@task(name="top_nodes", **_READ)
def top_nodes() -> list[NodeUsage]:
    """`kubectl top nodes`."""
    return kubeops.top_nodes(_api())
