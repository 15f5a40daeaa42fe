"""`kubectl top pod | node`: usage from metrics.k8s.io (metrics-server), sorted as kubectl sorts it.

Usage::

    top_pods(api, "prod", sort_by="memory")[0]      # the pod using the most memory
    top_nodes(api)                                   # with % of allocatable
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from kubernetes.client import ApiClient, ApisApi, CoreV1Api, CustomObjectsApi
from kubernetes.utils import parse_quantity

from kubeops.errors import MetricsUnavailable, api_call
from kubeops.models import ContainerUsage, NodeUsage, PodUsage, SortBy
from tasks.clients import request_timeout_s

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"


def _require_metrics_api(api: ApiClient) -> None:
    """kubectl top's discovery check: `/apis` must list metrics.k8s.io with v1beta1."""
    with api_call("discovering API groups"):
        groups = ApisApi(api).get_api_versions(_request_timeout=request_timeout_s(api)).groups
    for group in groups:
        if group.name == METRICS_GROUP and any(v.version == METRICS_VERSION for v in group.versions):
            return
    raise MetricsUnavailable("Metrics API not available")


def _millicores(quantity: str | None) -> int:
    """`Quantity.MilliValue()`: CPU in millicores, rounded up."""
    return math.ceil(parse_quantity(quantity or "0") * 1000)


def _bytes(quantity: str | None) -> int:
    """`Quantity.Value()`: rounded up to a whole byte."""
    return math.ceil(parse_quantity(quantity or "0"))


def top_pods(api: ApiClient, namespace: str, sort_by: SortBy = "memory") -> list[PodUsage]:
    """`kubectl top pod -n NS --sort-by=memory|cpu`: pods by summed container usage, highest first."""
    _require_metrics_api(api)
    with api_call(f"reading pod metrics in {namespace}"):
        body = CustomObjectsApi(api).list_namespaced_custom_object(
            METRICS_GROUP, METRICS_VERSION, namespace, "pods", _request_timeout=request_timeout_s(api)
        )
    rows = []
    for item in _items(body):
        containers = [
            ContainerUsage(
                name=c.get("name", ""),
                cpu_millicores=_millicores((c.get("usage") or {}).get("cpu")),
                memory_bytes=_bytes((c.get("usage") or {}).get("memory")),
            )
            for c in item.get("containers") or []
        ]
        meta = item.get("metadata") or {}
        rows.append(
            PodUsage(
                namespace=meta.get("namespace", namespace),
                name=meta.get("name", ""),
                cpu_millicores=sum(c.cpu_millicores for c in containers),
                memory_bytes=sum(c.memory_bytes for c in containers),
                containers=containers,
            )
        )
    return sorted(rows, key=lambda r: (-_usage(r, sort_by), r.name))


def _items(body: object) -> list[dict[str, Any]]:
    """The `items` of a custom-object list (the client returns it as plain JSON)."""
    items = body.get("items") if isinstance(body, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def _usage(row: PodUsage | NodeUsage, sort_by: SortBy) -> int:
    if sort_by == "cpu":
        return row.cpu_millicores
    if sort_by == "memory":
        return row.memory_bytes
    raise ValueError(f"sort_by must be 'cpu' or 'memory' (got {sort_by!r})")


def top_nodes(api: ApiClient, sort_by: SortBy = "cpu") -> list[NodeUsage]:
    """`kubectl top node --sort-by=cpu|memory`: usage and % of allocatable, highest first."""
    _require_metrics_api(api)
    with api_call("reading node metrics"):
        body = CustomObjectsApi(api).list_cluster_custom_object(
            METRICS_GROUP, METRICS_VERSION, "nodes", _request_timeout=request_timeout_s(api)
        )
    with api_call("listing nodes"):
        nodes = CoreV1Api(api).list_node(_request_timeout=request_timeout_s(api)).items
    allocatable = {
        n.metadata.name: (n.status.allocatable or {})
        for n in nodes
        if n.metadata and n.metadata.name and n.status
    }
    rows = []
    for item in _items(body):
        name = (item.get("metadata") or {}).get("name", "")
        usage = item.get("usage") or {}
        cpu, memory = _millicores(usage.get("cpu")), _bytes(usage.get("memory"))
        limits = allocatable.get(name, {})
        rows.append(
            NodeUsage(
                name=name,
                cpu_millicores=cpu,
                memory_bytes=memory,
                cpu_pct=_pct(cpu, _millicores(limits["cpu"])) if "cpu" in limits else None,
                memory_pct=_pct(memory, _bytes(limits["memory"])) if "memory" in limits else None,
            )
        )
    return sorted(rows, key=lambda r: (-_usage(r, sort_by), r.name))


def _pct(used: int, total: int) -> float | None:
    return None if total <= 0 else round(float(Decimal(used) * 100 / Decimal(total)), 1)
