"""What every kubectl command here reads the same way: the Deployment, its metadata, its containers.

Usage::

    dep = read_deployment(api, workload)
    label_selector_string(dep.spec.selector)                # "app=web,tier in (a,b)"
    template_container(dep, workload)                       # the container kubectl would pick
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import (
    ApiClient,
    AppsV1Api,
    V1Container,
    V1Deployment,
    V1LabelSelector,
    V1Pod,
    V1ReplicaSet,
)

from kubeops.errors import ContainerNotFound, api_call
from kubeops.models import Workload
from tasks.clients import request_timeout_s

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def read_deployment(api: ApiClient, workload: Workload) -> V1Deployment:
    with api_call(f"reading {workload}"):
        return AppsV1Api(api).read_namespaced_deployment(
            workload.name, workload.namespace, _request_timeout=request_timeout_s(api)
        )


def patch_deployment(
    api: ApiClient,
    workload: Workload,
    patch: dict[str, Any] | list[dict[str, Any]],
    *,
    what: str,
    dry_run: bool,
    content_type: str | None = None,
) -> None:
    """PATCH the Deployment (`dryRun=All` when `dry_run`: validated, not persisted). A list is sent as a
    JSON Patch; `content_type` names another kind (strategic merge for `set env` and `rollout restart`)."""
    with api_call(what):
        AppsV1Api(api).patch_namespaced_deployment(
            workload.name,
            workload.namespace,
            patch,
            dry_run="All" if dry_run else None,
            _content_type=content_type,
            _request_timeout=request_timeout_s(api),
        )


def label_selector_string(selector: V1LabelSelector | None) -> str:
    """`metav1.LabelSelectorAsSelector(...).String()`: `app=web,tier in (a,b),!legacy`."""
    if selector is None:
        raise ValueError("a Deployment without spec.selector selects nothing")
    parts = [f"{key}={value}" for key, value in sorted((selector.match_labels or {}).items())]
    for expr in selector.match_expressions or []:
        values = ",".join(sorted(expr.values or []))
        match expr.operator:
            case "In":
                parts.append(f"{expr.key} in ({values})")
            case "NotIn":
                parts.append(f"{expr.key} notin ({values})")
            case "Exists":
                parts.append(expr.key)
            case "DoesNotExist":
                parts.append(f"!{expr.key}")
            case other:
                raise ValueError(f"unknown label selector operator {other!r} on key {expr.key!r}")
    return ",".join(parts)


def created_at(obj: V1ReplicaSet | V1Pod) -> datetime | None:
    return aware(obj.metadata.creation_timestamp) if obj.metadata else None


def aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def name_of(obj: V1ReplicaSet | V1Pod | V1Deployment) -> str:
    return (obj.metadata.name if obj.metadata else None) or ""


def annotations_of(obj: V1ReplicaSet | V1Deployment) -> dict[str, str]:
    return dict((obj.metadata.annotations if obj.metadata else None) or {})


def pick_container(
    containers: list[V1Container], annotations: Mapping[str, str], workload: Workload, where: str
) -> V1Container:
    """The workload's container, else the `default-container` annotation's, else the first (as kubectl)."""
    wanted = workload.container or annotations.get(DEFAULT_CONTAINER_ANNOTATION)
    if wanted is None:
        if not containers:
            raise ContainerNotFound(f"{where} has no containers")
        return containers[0]
    for container in containers:
        if container.name == wanted:
            return container
    if workload.container is None:  # a stale annotation: kubectl falls back to the first container
        if not containers:
            raise ContainerNotFound(f"{where} has no containers")
        return containers[0]
    names = ", ".join(c.name for c in containers)
    raise ContainerNotFound(f'container "{wanted}" not found in {where} (containers: {names})')


def template_container(dep: V1Deployment, workload: Workload) -> V1Container:
    template = dep.spec.template if dep.spec else None
    containers = (template.spec.containers if template and template.spec else None) or []
    annotations = (template.metadata.annotations if template and template.metadata else None) or {}
    return pick_container(containers, annotations, workload, f"the pod template of {workload}")
