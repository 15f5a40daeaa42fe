"""Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for (`Accept: ...;as=Table`).

Usage::

    table = to_table("Deployment", [dep], now, resource_version="42", include_object="Object")

Columns and cell formats follow the API server's printers (`pkg/printers/internalversion`), so
`kubectl get deploy,rs,pods,events,nodes` prints what it prints against a real cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sandbox.k8s.objects import human_duration, parse_time
from sandbox.k8s.selectors import selector_string

__all__ = ["to_table"]

Column = tuple[str, str, int]  # name, type, priority


def _age(obj: dict[str, Any], now: datetime) -> str:
    ts = obj["metadata"].get("creationTimestamp")
    return human_duration(now - parse_time(ts)) if ts else "<unknown>"


def _since(ts: str | None, now: datetime) -> str:
    return human_duration(now - parse_time(ts)) if ts else "<unknown>"


def _containers(spec: dict[str, Any]) -> tuple[str, str]:
    cs = spec.get("template", {}).get("spec", {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _deployment(d: dict[str, Any], now: datetime) -> list[Any]:
    s, spec = d.get("status") or {}, d["spec"]
    names, images = _containers(spec)
    return [
        d["metadata"]["name"],
        f"{s.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        s.get("updatedReplicas", 0),
        s.get("availableReplicas", 0),
        _age(d, now),
        names,
        images,
        selector_string(spec.get("selector")),
    ]


def _replica_set(rs: dict[str, Any], now: datetime) -> list[Any]:
    s, spec = rs.get("status") or {}, rs["spec"]
    names, images = _containers(spec)
    return [
        rs["metadata"]["name"],
        spec.get("replicas", 0),
        s.get("replicas", 0),
        s.get("readyReplicas", 0),
        _age(rs, now),
        names,
        images,
        selector_string(spec.get("selector")),
    ]


def _pod(p: dict[str, Any], now: datetime) -> list[Any]:
    status = p.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = 0
    last_restart: str | None = None
    for c in statuses:
        restarts += int(c.get("restartCount", 0))
        term = (c.get("lastState") or {}).get("terminated")
        if term and term.get("finishedAt") and (last_restart is None or term["finishedAt"] > last_restart):
            last_restart = term["finishedAt"]
        state = c.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if p["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    restarts_cell = str(restarts)
    if restarts and last_restart:
        restarts_cell = f"{restarts} ({_since(last_restart, now)} ago)"
    return [
        p["metadata"]["name"],
        f"{ready}/{len(p['spec'].get('containers') or [])}",
        reason,
        restarts_cell,
        _age(p, now),
        status.get("podIP", "<none>"),
        p["spec"].get("nodeName", "<none>"),
        "<none>",
        "<none>",
    ]


def _event(e: dict[str, Any], now: datetime) -> list[Any]:
    first = e.get("firstTimestamp") or e.get("eventTime")
    first_cell = _since(first, now)
    last_cell = _since(e.get("lastTimestamp"), now) if e.get("lastTimestamp") else first_cell
    count = int(e.get("count") or 0)
    if e.get("series"):
        last_cell = _since(e["series"].get("lastObservedTime"), now)
        count = int(e["series"].get("count") or 1)
    elif count == 0:
        count = 1
    if count > 1:
        last_cell = f"{last_cell} (x{count} over {first_cell})"
    ref = e.get("involvedObject") or {}
    target = (
        f"{str(ref.get('kind', '')).lower()}/{ref['name']}"
        if ref.get("name")
        else str(ref.get("kind", "")).lower()
    )
    src = e.get("source") or {}
    source = src.get("component") or e.get("reportingComponent") or ""
    host = src.get("host") or e.get("reportingInstance") or ""
    if host:
        source = f"{source}, {host}"
    return [
        last_cell,
        e.get("type", ""),
        e.get("reason", ""),
        target,
        ref.get("fieldPath", ""),
        source,
        str(e.get("message", "")).strip(),
        first_cell,
        count,
        e["metadata"]["name"],
    ]


def _node(n: dict[str, Any], now: datetime) -> list[Any]:
    status = n.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
    state = "Ready" if ready and ready["status"] == "True" else "NotReady"
    roles = sorted(
        k.split("/", 1)[1]
        for k in (n["metadata"].get("labels") or {})
        if k.startswith("node-role.kubernetes.io/")
    )
    addresses = {a["type"]: a["address"] for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        n["metadata"]["name"],
        state,
        ",".join(roles) or "<none>",
        _age(n, now),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        addresses.get("ExternalIP", "<none>"),
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


def _namespace(ns: dict[str, Any], now: datetime) -> list[Any]:
    return [ns["metadata"]["name"], (ns.get("status") or {}).get("phase", ""), _age(ns, now)]


_NAME: Column = ("Name", "string", 0)
_AGE: Column = ("Age", "string", 0)
_PRINTERS: dict[str, tuple[list[Column], Callable[[dict[str, Any], datetime], list[Any]]]] = {
    "Deployment": (
        [
            _NAME,
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            _AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _deployment,
    ),
    "ReplicaSet": (
        [
            _NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            _AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _replica_set,
    ),
    "Pod": (
        [
            _NAME,
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            _AGE,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        _pod,
    ),
    "Event": (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Subobject", "string", 1),
            ("Source", "string", 1),
            ("Message", "string", 0),
            ("First Seen", "string", 1),
            ("Count", "integer", 1),
            ("Name", "string", 1),
        ],
        _event,
    ),
    "Node": (
        [
            _NAME,
            ("Status", "string", 0),
            ("Roles", "string", 0),
            _AGE,
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        _node,
    ),
    "Namespace": ([_NAME, ("Status", "string", 0), _AGE], _namespace),
}


def _row_object(obj: dict[str, Any], kind: str, api_version: str, include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return {
            "kind": kind,
            "apiVersion": api_version,
            **{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")},
        }
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def to_table(
    kind: str,
    api_version: str,
    items: list[dict[str, Any]],
    now: datetime,
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str | None = None,
) -> dict[str, Any]:
    """A `Table` of `items`; kinds without a printer get Name and Age, as the API server's default."""
    columns, printer = _PRINTERS.get(
        kind,
        (
            [_NAME, ("Created At", "date", 0)],
            lambda o, _n: [o["metadata"]["name"], o["metadata"].get("creationTimestamp")],
        ),
    )
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    rows = []
    for obj in items:
        row: dict[str, Any] = {"cells": printer(obj, now)}
        ro = _row_object(obj, kind, api_version, include_object)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [
            {
                "name": name,
                "type": ctype,
                "format": "name" if name == "Name" and i == 0 else "",
                "description": name,
                "priority": priority,
            }
            for i, (name, ctype, priority) in enumerate(columns)
        ],
        "rows": rows,
    }
