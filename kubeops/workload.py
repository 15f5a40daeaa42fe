"""Changes and reads of one Deployment: `kubectl scale`, `set env`, `rollout restart`, its replicas.

Usage::

    scale(api, web, 4, dry_run=True)                     # ScaleResult(previous_replicas=2, replicas=4)
    set_env(api, web, {"FEATURE_X_ENABLED": "false", "OLD": None})
    restart(api, web, now=datetime.now(UTC))

Every write is idempotent (nothing is sent when nothing would change) and takes `dry_run` (`dryRun=All`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubernetes.client import ApiClient, AppsV1Api

from kubeops.errors import DeploymentPaused, api_call
from kubeops.models import EnvChange, Replicas, RestartResult, ScaleResult, Workload
from kubeops.objects import RESTARTED_AT_ANNOTATION, patch_deployment, read_deployment, template_container
from tasks.clients import request_timeout_s

STRATEGIC_MERGE = "application/strategic-merge-patch+json"


def scale(api: ApiClient, workload: Workload, replicas: int, dry_run: bool = False) -> ScaleResult:
    """`kubectl scale deployment/X --replicas=N`: a merge patch of the `/scale` subresource.

    Reads `/scale` first to report the previous count; sends nothing when it is already `replicas`.
    """
    if replicas < 0:
        raise ValueError(f"replicas must be >= 0 (got {replicas})")
    apps = AppsV1Api(api)
    with api_call(f"reading the scale of {workload}"):
        current = apps.read_namespaced_deployment_scale(
            workload.name, workload.namespace, _request_timeout=request_timeout_s(api)
        )
    previous = (current.spec.replicas if current.spec else None) or 0
    if previous == replicas:
        return ScaleResult(
            workload=workload, previous_replicas=previous, replicas=replicas, changed=False, dry_run=dry_run
        )
    with api_call(f"scaling {workload} to {replicas}"):
        scaled = apps.patch_namespaced_deployment_scale(
            workload.name,
            workload.namespace,
            {"spec": {"replicas": replicas}},
            dry_run="All" if dry_run else None,
            _content_type="application/merge-patch+json",
            _request_timeout=request_timeout_s(api),
        )
    now = (scaled.spec.replicas if scaled.spec else None) or 0
    return ScaleResult(
        workload=workload, previous_replicas=previous, replicas=now, changed=True, dry_run=dry_run
    )


def get_deployment_env(api: ApiClient, workload: Workload) -> dict[str, str]:
    """The literal env of the workload's container (`kubectl set env deployment/X --list`).

    Variables set from a source (`valueFrom`) are left out: they have no value in the Deployment.
    """
    container = template_container(read_deployment(api, workload), workload)
    return {e.name: e.value or "" for e in container.env or [] if e.value_from is None}


def get_replicas(api: ApiClient, workload: Workload) -> Replicas:
    """The Deployment's desired, current, updated, ready and available replicas."""
    dep = read_deployment(api, workload)
    status = dep.status
    return Replicas(
        workload=workload,
        desired=(dep.spec.replicas if dep.spec else None) or 0,
        current=(status.replicas if status else None) or 0,
        updated=(status.updated_replicas if status else None) or 0,
        ready=(status.ready_replicas if status else None) or 0,
        available=(status.available_replicas if status else None) or 0,
    )


def set_env(
    api: ApiClient, workload: Workload, env: Mapping[str, str | None], dry_run: bool = False
) -> EnvChange:
    """`kubectl set env deployment/X NAME=value NAME-`: a strategic merge patch on one container's env.

    A `None` value deletes the variable (`$patch: delete`). Idempotent: variables that already have the
    value (or are already absent) are left out, and nothing is sent when nothing changes. Unlike kubectl's
    `--containers='*'` default, one container: the workload's, else the default-container annotation's,
    else the first.
    """
    for key in env:
        if not key:
            raise ValueError("set_env: an environment variable name is empty")
    dep = read_deployment(api, workload)
    container = template_container(dep, workload)
    current = {e.name: e for e in container.env or []}
    to_set = {
        key: value
        for key, value in env.items()
        if value is not None
        and not (key in current and current[key].value_from is None and (current[key].value or "") == value)
    }
    to_remove = [key for key, value in env.items() if value is None and key in current]
    change = functools.partial(
        EnvChange, workload=workload, container=container.name, set=to_set, removed=to_remove, dry_run=dry_run
    )
    if not to_set and not to_remove:
        return change(changed=False)
    entries: list[dict[str, Any]] = []
    for key, value in to_set.items():
        entry: dict[str, Any] = {"name": key, "value": value}
        if key in current and current[key].value_from is not None:
            entry["valueFrom"] = None  # a literal value replaces the source
        entries.append(entry)
    entries.extend({"name": key, "$patch": "delete"} for key in to_remove)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": container.name, "env": entries}]}}}}
    patch_deployment(
        api, workload, patch, what=f"setting env on {workload}", dry_run=dry_run, content_type=STRATEGIC_MERGE
    )
    return change(changed=True)


def _rfc3339(moment: datetime) -> str:
    """Go's `time.RFC3339` layout: seconds precision, `Z` for UTC, else the offset."""
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def restart(api: ApiClient, workload: Workload, now: datetime, dry_run: bool = False) -> RestartResult:
    """`kubectl rollout restart deployment/X`: stamp `kubectl.kubernetes.io/restartedAt` on the pod template.

    Refuses a paused Deployment (`DeploymentPaused`). When the stamp already has this value (a restart
    within the same second), nothing is sent and `changed` is False (kubectl reports an error there).
    """
    if now.tzinfo is None:
        raise ValueError("restart: `now` must be timezone-aware")
    dep = read_deployment(api, workload)
    if dep.spec is not None and dep.spec.paused:
        raise DeploymentPaused("can't restart paused deployment (run rollout resume first)")
    stamp = _rfc3339(now)
    template = dep.spec.template if dep.spec else None
    existing = (template.metadata.annotations if template and template.metadata else None) or {}
    if existing.get(RESTARTED_AT_ANNOTATION) == stamp:
        return RestartResult(workload=workload, restarted_at=stamp, changed=False, dry_run=dry_run)
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}}
    patch_deployment(
        api, workload, patch, what=f"restarting {workload}", dry_run=dry_run, content_type=STRATEGIC_MERGE
    )
    return RestartResult(workload=workload, restarted_at=stamp, changed=True, dry_run=dry_run)
