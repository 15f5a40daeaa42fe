"""The three PATCH flavours the API server accepts, applied to plain dicts.

Usage::

    new = apply_patch(obj, body, JSON_PATCH)         # RFC 6902 list of ops (via `jsonpatch`)
    new = apply_patch(obj, body, MERGE_PATCH)        # RFC 7386: dicts merge, null deletes, lists replace
    new = apply_patch(obj, body, STRATEGIC_MERGE)    # Kubernetes SMP: lists merged by their merge key

The strategic merge patch knows the merge keys of the fields the emulated objects carry (containers,
env, volumes by `name`; ports by `containerPort`; volumeMounts by `mountPath`; ...) and the directives
`$patch: delete|replace|merge`, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>` and
`$retainKeys` (see kubernetes/community `strategic-merge-patch.md`). A patch that cannot be applied raises
`ApiError` (400 for a malformed body, 422 for one that does not fit the object).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from sandbox.k8s.errors import ApiError

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "PATCH_TYPES",
    "STRATEGIC_MERGE",
    "apply_patch",
    "json_merge_patch",
    "strategic_merge_patch",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE)

# Field name -> merge key, for the lists that carry `patchStrategy:"merge"` in the Kubernetes types.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "resourceClaims": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
}
# Primitive lists merged as sets (`patchStrategy:"merge"` without a key).
MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch: a dict merges key by key, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def _smp_map(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
    """Merge `patch` into a copy of `original`; None means the map itself is deleted."""
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "replace":
        return _strip_directives(body)
    if directive not in (None, "merge"):
        raise ApiError(422, "Invalid", f"unknown patch directive {directive!r}")
    result = copy.deepcopy(original)
    retain = body.pop("$retainKeys", None)
    orders: dict[str, list[Any]] = {}
    for key in [k for k in body if k.startswith("$setElementOrder/")]:
        orders[key.split("/", 1)[1]] = body.pop(key)
    for key in [k for k in body if k.startswith("$deleteFromPrimitiveList/")]:
        field = key.split("/", 1)[1]
        doomed = body.pop(key)
        if isinstance(result.get(field), list):
            result[field] = [x for x in result[field] if x not in doomed]
    for key, value in body.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            cur = result.get(key)
            merged = _smp_map(cur if isinstance(cur, dict) else {}, value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value)
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(field, result[field], order)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _reorder(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = MERGE_KEYS.get(field)

    def ident(x: Any) -> Any:
        return x.get(key) if key and isinstance(x, dict) else x

    wanted = [ident(o) for o in order]
    rank = {w: i for i, w in enumerate(wanted) if not isinstance(w, (dict, list))}
    return sorted(items, key=lambda x: rank.get(ident(x), len(rank)))


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _smp_list(field: str, original: Any, patch: list[Any]) -> list[Any]:
    key = MERGE_KEYS.get(field)
    orig = copy.deepcopy(original) if isinstance(original, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [
            _strip_directives(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")
        ]
    if field in MERGED_PRIMITIVE_LISTS:
        return orig + [x for x in patch if x not in orig]
    if key is None:
        return _strip_directives(patch)
    result = orig
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise ApiError(
                422, "Invalid", f"map: {item!r} does not contain declared merge key: {key} (field {field})"
            )
        index = next(
            (i for i, x in enumerate(result) if isinstance(x, dict) and x.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
            continue
        if index is None:
            result.append(_strip_directives({k: v for k, v in item.items() if k != "$patch"}))
        else:
            merged = _smp_map(result[index], item)
            if merged is None:
                result.pop(index)
            else:
                result[index] = merged
    return result


def strategic_merge_patch(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes strategic merge patch of `original` by `patch` (both JSON-shaped dicts)."""
    if not isinstance(patch, dict):
        raise ApiError.bad_request("strategic merge patch body must be a JSON object")
    merged = _smp_map(original, patch)
    if merged is None:
        raise ApiError(422, "Invalid", "a strategic merge patch cannot delete the whole object")
    return merged


def apply_patch(obj: dict[str, Any], body: Any, content_type: str) -> dict[str, Any]:
    """Apply a PATCH body of the given Content-Type to a copy of `obj` and return the result."""
    if content_type == JSON_PATCH:
        if not isinstance(body, list):
            raise ApiError.bad_request("json patch body must be a JSON array of operations")
        try:
            result = jsonpatch.JsonPatch(body).apply(copy.deepcopy(obj))
        except jsonpatch.InvalidJsonPatch as exc:
            raise ApiError.bad_request(f"invalid json patch: {exc}") from exc
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise ApiError(
                422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
            ) from exc
        if not isinstance(result, dict):
            raise ApiError(422, "Invalid", "json patch replaced the object with a non-object")
        return result
    if content_type == MERGE_PATCH:
        if not isinstance(body, dict):
            raise ApiError.bad_request("merge patch body must be a JSON object")
        return json_merge_patch(obj, body)
    if content_type == STRATEGIC_MERGE:
        return strategic_merge_patch(obj, body)
    raise ApiError.unsupported_media_type(content_type, list(PATCH_TYPES))
