"""The API server's validation of Deployments: a bad write is a 422 naming the field, as on a cluster.

Usage::

    validate_deployment(new, old)     # raises ApiError 422 (reason Invalid) with one cause per field
"""

from __future__ import annotations

import json
import re
from typing import Any

from sandbox.k8s.errors import ApiError
from sandbox.k8s.selectors import label_selector_from_spec

__all__ = ["validate_deployment", "validate_name"]

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def validate_name(name: Any) -> str | None:
    """The cause text if `name` is not a valid object name (DNS-1123 subdomain), else None."""
    if not isinstance(name, str) or not name:
        return "Required value: name or generateName is required"
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        return (
            f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _go_map(d: dict[str, Any]) -> str:
    return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(d.items())) + "]"


def _int_or_percent_ok(v: Any) -> bool:
    if _is_int(v):
        return bool(v >= 0)
    return isinstance(v, str) and re.fullmatch(r"\d+%", v) is not None


def validate_deployment(dep: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    """Raise `ApiError` 422 listing every invalid field of a Deployment (after defaults)."""
    causes: list[tuple[str, str]] = []
    meta: dict[str, Any] = dep["metadata"] if isinstance(dep.get("metadata"), dict) else {}
    name = meta.get("name", "")
    if (msg := validate_name(name)) is not None:
        causes.append(("metadata.name", msg))
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
        ):
            causes.append((f"metadata.{field}", "Invalid value: must be a map of string to string"))
    spec = dep.get("spec")
    if not isinstance(spec, dict):
        raise ApiError.invalid("Deployment", str(name), [("spec", "Required value")], group="apps")
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        causes.append(
            ("spec.replicas", f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0")
        )
    for field in ("revisionHistoryLimit", "minReadySeconds"):
        v = spec.get(field)
        if v is not None and (not _is_int(v) or v < 0):
            causes.append(
                (f"spec.{field}", f"Invalid value: {json.dumps(v)}: must be greater than or equal to 0")
            )
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None and (not _is_int(deadline) or deadline <= int(spec.get("minReadySeconds") or 0)):
        causes.append(
            (
                "spec.progressDeadlineSeconds",
                f"Invalid value: {json.dumps(deadline)}: must be greater than minReadySeconds",
            )
        )
    strategy = spec.get("strategy") or {}
    stype = strategy.get("type") if isinstance(strategy, dict) else None
    if stype not in ("RollingUpdate", "Recreate"):
        causes.append(
            (
                "spec.strategy.type",
                f'Unsupported value: "{stype}": supported values: "Recreate", "RollingUpdate"',
            )
        )
    elif stype == "RollingUpdate":
        ru = strategy.get("rollingUpdate") or {}
        for key in ("maxSurge", "maxUnavailable"):
            if not _int_or_percent_ok(ru.get(key)):
                causes.append(
                    (
                        f"spec.strategy.rollingUpdate.{key}",
                        f"Invalid value: {json.dumps(ru.get(key))}: "
                        "must be a non-negative integer or percentage",
                    )
                )
        if str(ru.get("maxSurge")) in ("0", "0%") and str(ru.get("maxUnavailable")) in ("0", "0%"):
            causes.append(
                (
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "Invalid value: 0: may not be 0 when `maxSurge` is 0",
                )
            )
    elif strategy.get("rollingUpdate") is not None:
        causes.append(
            (
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            )
        )
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        causes.append(("spec.selector", "Required value"))
        selector = None
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(("spec.template", "Required value"))
    else:
        labels = (template.get("metadata") or {}).get("labels") or {}
        if selector is not None:
            try:
                matches = label_selector_from_spec(selector).matches(labels)
            except ApiError as exc:
                causes.append(("spec.selector", f"Invalid value: {exc.message}"))
                matches = True
            if not matches:
                causes.append(
                    (
                        "spec.template.metadata.labels",
                        f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`",
                    )
                )
        tspec: dict[str, Any] = template["spec"] if isinstance(template.get("spec"), dict) else {}
        if tspec.get("restartPolicy", "Always") != "Always":
            causes.append(
                (
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{tspec.get("restartPolicy")}": supported values: "Always"',
                )
            )
        containers = tspec.get("containers")
        if not isinstance(containers, list) or not containers:
            causes.append(("spec.template.spec.containers", "Required value"))
            containers = []
        seen: set[str] = set()
        for i, c in enumerate(containers):
            path = f"spec.template.spec.containers[{i}]"
            if not isinstance(c, dict):
                causes.append((path, "Invalid value: must be an object"))
                continue
            cname = c.get("name")
            if not isinstance(cname, str) or not cname:
                causes.append((f"{path}.name", "Required value"))
            elif cname in seen:
                causes.append((f"{path}.name", f'Duplicate value: "{cname}"'))
            else:
                seen.add(cname)
            image = c.get("image")
            if not isinstance(image, str) or not image.strip():
                causes.append((f"{path}.image", "Required value"))
            for j, env in enumerate(c.get("env") or []):
                ename = env.get("name") if isinstance(env, dict) else None
                if not isinstance(ename, str) or not ename:
                    causes.append((f"{path}.env[{j}].name", "Required value"))
                elif not _ENV_NAME.fullmatch(ename):
                    causes.append(
                        (
                            f"{path}.env[{j}].name",
                            f'Invalid value: "{ename}": a valid environment '
                            "variable name must consist of alphabetic characters, digits, '_', '-', or '.'",
                        )
                    )
                elif "value" in env and not isinstance(env["value"], str):
                    causes.append(
                        (
                            f"{path}.env[{j}].value",
                            f"Invalid value: {json.dumps(env['value'])}: must be a string",
                        )
                    )
    if old is not None and selector is not None and selector != old["spec"].get("selector"):
        causes.append(("spec.selector", f"Invalid value: {json.dumps(selector)}: field is immutable"))
    if causes:
        raise ApiError.invalid("Deployment", str(name), causes, group="apps")
