"""Discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/{group}[/{version}]`, `/version`).

Usage::

    doc = group_list()                    # GET /apis: apps/v1 and metrics.k8s.io/v1beta1
    doc = resource_list("apps", "v1")     # GET /apis/apps/v1, None for an unknown group/version

kubectl asks for the aggregated form (apidiscovery.k8s.io/v2) first and falls back to these legacy
documents when the answer is a plain `APIGroupList`, as it does against older servers.
"""

from __future__ import annotations

from typing import Any

from sandbox.k8s.resources import RESOURCES

__all__ = ["api_versions", "group", "group_list", "resource_list", "version_info"]

_GROUPS: dict[str, str] = {"apps": "v1", "metrics.k8s.io": "v1beta1"}


def version_info() -> dict[str, str]:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.4",
        "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T16:02:27Z",
        "goVersion": "go1.23.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def group(name: str) -> dict[str, Any] | None:
    version = _GROUPS.get(name)
    if version is None:
        return None
    gv = {"groupVersion": f"{name}/{version}", "version": version}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": [gv], "preferredVersion": gv}


def group_list() -> dict[str, Any]:
    groups = [group(name) for name in _GROUPS]
    for g in groups:
        if g is not None:
            g.pop("kind")
            g.pop("apiVersion")
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(group_name: str, version: str) -> dict[str, Any] | None:
    served = [r for r in RESOURCES if r.group == group_name and r.version == version]
    if not served:
        return None
    resources: list[dict[str, Any]] = []
    for r in served:
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        resources.append(entry)
        for sub, (sub_group, sub_version, sub_kind, verbs) in r.subresources.items():
            item: dict[str, Any] = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub_kind,
                "verbs": list(verbs),
            }
            if sub_group:
                item["group"], item["version"] = sub_group, sub_version
            resources.append(item)
    gv = f"{group_name}/{version}" if group_name else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
