"""kubectl's algorithms, reproduced with the official `kubernetes` client (sync API). No Prefect here.

Usage::

    import kubeops
    from kubeops.models import Workload
    from tasks.clients import kubernetes_api

    api = kubernetes_api(settings)
    web = Workload(namespace="prod", name="web")
    undo = kubeops.rollout_undo(api, web)                       # kubectl rollout undo deployment/web
    kubeops.wait_for_rollout(api, web, deadline_s=300, poll_interval_s=2)

Each function does what the named kubectl command does, as `kubectl` does it, and returns a model from
`kubeops.models`. Every request carries a timeout (`tasks.clients.request_timeout_s`). Failures are
raised as `KubernetesError` subclasses (`kubeops.errors`); `tasks.retry.is_transient(exc)` tells the
ones worth retrying, for this client as for every other.

One module per kind of command:

- `rollout`: `rollout history | undo | status`, waiting for a rollout (on `replicasets`: a
  Deployment's ReplicaSets and revisions as kubectl finds them);
- `workload`: `scale`, `set env`, `rollout restart`, the env and replica counts;
- `logs`, `events`, `top`: `kubectl logs deployment/X`, `get events`, `top pod | node`;
- `objects`: the reads they share (the Deployment, its selector, its containers); `errors`: failures.

The Prefect tasks over these functions are `tasks/kubernetes.py`; this package never imports Prefect.
"""

from __future__ import annotations

from kubeops.errors import (
    Conflict,
    ContainerNotFound,
    DeploymentPaused,
    KubernetesError,
    KubernetesRequestFailed,
    KubernetesUnavailable,
    MetricsUnavailable,
    NoPodsFound,
    NoRolloutHistory,
    RevisionNotFound,
    RolloutFailed,
    RolloutTimedOut,
    WorkloadNotFound,
)
from kubeops.events import list_events
from kubeops.logs import deployment_logs
from kubeops.rollout import last_rollout, rollout_history, rollout_status, rollout_undo, wait_for_rollout
from kubeops.top import top_nodes, top_pods
from kubeops.workload import get_deployment_env, get_replicas, restart, scale, set_env

__all__ = [
    "Conflict",
    "ContainerNotFound",
    "DeploymentPaused",
    "KubernetesError",
    "KubernetesRequestFailed",
    "KubernetesUnavailable",
    "MetricsUnavailable",
    "NoPodsFound",
    "NoRolloutHistory",
    "RevisionNotFound",
    "RolloutFailed",
    "RolloutTimedOut",
    "WorkloadNotFound",
    "deployment_logs",
    "get_deployment_env",
    "get_replicas",
    "last_rollout",
    "list_events",
    "restart",
    "rollout_history",
    "rollout_status",
    "rollout_undo",
    "scale",
    "set_env",
    "top_nodes",
    "top_pods",
    "wait_for_rollout",
]
