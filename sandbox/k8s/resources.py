"""The resource kinds the emulator serves: names, API group/version, scope, verbs, short names.

Usage::

    info = resource_for_kind("deploy")      # accepts Kind, plural, singular or short name
    info.kind, info.plural, info.api_version # "Deployment", "deployments", "apps/v1"

One table read by the store (kind names), the server (routing) and discovery (`/api/v1`, `/apis/...`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RESOURCES", "Resource", "resource_for_kind"]


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str
    singular: str
    group: str
    version: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: dict[str, tuple[str, str, str, tuple[str, ...]]] = field(default_factory=dict)
    """name -> (group, version, kind, verbs) of a subresource such as `scale`."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def stored(self) -> bool:
        """False for views computed on each read (the metrics API)."""
        return self.group != "metrics.k8s.io"


_READ = ("get", "list", "watch")

RESOURCES: tuple[Resource, ...] = (
    Resource(
        "Deployment",
        "deployments",
        "deployment",
        "apps",
        "v1",
        True,
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("deploy",),
        ("all",),
        {
            "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
            "status": ("", "", "Deployment", ("get",)),
        },
    ),
    Resource(
        "ReplicaSet",
        "replicasets",
        "replicaset",
        "apps",
        "v1",
        True,
        ("get", "list", "watch"),
        ("rs",),
        ("all",),
    ),
    Resource(
        "Pod",
        "pods",
        "pod",
        "",
        "v1",
        True,
        ("delete", "get", "list", "watch"),
        ("po",),
        ("all",),
        {"log": ("", "v1", "Pod", ("get",))},
    ),
    Resource("Event", "events", "event", "", "v1", True, ("create", "get", "list", "watch"), ("ev",)),
    Resource("Node", "nodes", "node", "", "v1", False, _READ, ("no",)),
    Resource("Namespace", "namespaces", "namespace", "", "v1", False, _READ, ("ns",)),
    Resource("PodMetrics", "pods", "", "metrics.k8s.io", "v1beta1", True, ("get", "list")),
    Resource("NodeMetrics", "nodes", "", "metrics.k8s.io", "v1beta1", False, ("get", "list")),
)

_BY_NAME: dict[str, Resource] = {}
for _r in RESOURCES:
    if not _r.stored:
        continue
    for _n in (_r.kind, _r.kind.lower(), _r.plural, _r.singular, *_r.short_names):
        _BY_NAME[_n] = _r


def resource_for_kind(name: str) -> Resource:
    """The stored resource named `name` (Kind, plural, singular or short name); KeyError if unknown."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(
            f"unknown kind {name!r}; known: {sorted({r.kind for r in RESOURCES if r.stored})}"
        ) from None


def served(group: str, version: str, plural: str) -> Resource | None:
    """The resource served at `/apis/{group}/{version}/.../{plural}` (core: group ""), or None."""
    for r in RESOURCES:
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None
