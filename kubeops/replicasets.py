"""A Deployment's ReplicaSets as kubectl finds them: owned, matched to the template, numbered by revision.

Usage::

    replica_sets, new_rs = all_replica_sets(api, dep, workload)   # old ones first, the new one last
    revision_of(rs)                                               # 3 (None: unparsable, skipped)

Ports `deploymentutil` (FindNewReplicaSet, GetAllReplicaSets, Revision, EqualIgnoreHash); the rollout
commands (`kubeops.rollout`) are built on it.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes.client import ApiClient, AppsV1Api, V1Deployment, V1PodTemplateSpec, V1ReplicaSet
from kubernetes.utils import parse_quantity

from kubeops.errors import KubernetesRequestFailed, api_call
from kubeops.models import Revision, Workload
from kubeops.objects import (
    CHANGE_CAUSE_ANNOTATION,
    EPOCH,
    LAST_APPLIED_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    annotations_of,
    created_at,
    label_selector_string,
    name_of,
)
from tasks.clients import request_timeout_s

ANNOTATIONS_TO_SKIP = frozenset(
    {
        LAST_APPLIED_ANNOTATION,
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


_LIST_PAGE_SIZE = 500
_MAX_LIST_PAGES = 200  # 100 000 objects: a bound on the paging loop, far above any real namespace
_REVISION_RE = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.ParseInt(v, 10, 64) accepts


def _owned_replica_sets(api: ApiClient, dep: V1Deployment, workload: Workload) -> list[V1ReplicaSet]:
    """Undo/history step 3: ReplicaSets matching the selector, controlled (ownerRef) by this Deployment."""
    selector = label_selector_string(dep.spec.selector if dep.spec else None)
    uid = dep.metadata.uid if dep.metadata else None
    apps = AppsV1Api(api)
    found: list[V1ReplicaSet] = []
    token: str | None = None
    for _page in range(_MAX_LIST_PAGES):
        with api_call(f"listing ReplicaSets of {workload}"):
            page = apps.list_namespaced_replica_set(
                workload.namespace,
                label_selector=selector,
                limit=_LIST_PAGE_SIZE,
                _continue=token,
                _request_timeout=request_timeout_s(api),
            )
        found.extend(page.items)
        token = page.metadata.var_continue if page.metadata else None
        if not token:
            break
    else:
        raise KubernetesRequestFailed(f"listing ReplicaSets of {workload}: more than {_MAX_LIST_PAGES} pages")
    return [rs for rs in found if _controlled_by(rs, uid)]


def _controlled_by(rs: V1ReplicaSet, uid: str | None) -> bool:
    """`metav1.IsControlledBy`: an ownerReference with `controller: true` and the owner's uid."""
    refs = (rs.metadata.owner_references if rs.metadata else None) or []
    return uid is not None and any(ref.controller and ref.uid == uid for ref in refs)


def _semantic(value: Any) -> Any:
    """JSON made comparable the way `apiequality.Semantic.DeepEqual` compares: empty equals absent."""
    if isinstance(value, dict):
        pruned = {key: _semantic(item) for key, item in value.items()}
        if "resources" in pruned and isinstance(pruned["resources"], dict):
            pruned["resources"] = {
                kind: {name: parse_quantity(q) for name, q in amounts.items()}
                if kind in ("limits", "requests") and isinstance(amounts, dict)
                else amounts
                for kind, amounts in pruned["resources"].items()
            }
        return {key: item for key, item in pruned.items() if item is not None and item != {} and item != []}
    if isinstance(value, list):
        return [_semantic(item) for item in value]
    return value


def template_json(api: ApiClient, template: V1PodTemplateSpec | None) -> dict[str, Any]:
    """The template as the API's camelCase JSON, without the `pod-template-hash` label (step 9)."""
    data: dict[str, Any] = api.sanitize_for_serialization(template) or {}
    metadata = data.get("metadata") or {}
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
        if not labels:
            del metadata["labels"]
    return data


def equal_ignore_hash(api: ApiClient, a: V1PodTemplateSpec | None, b: V1PodTemplateSpec | None) -> bool:
    """`EqualIgnoreHash`: templates equal once the `pod-template-hash` label is removed from both."""
    return _semantic(template_json(api, a)) == _semantic(template_json(api, b))


def _find_new_rs(api: ApiClient, dep: V1Deployment, owned: list[V1ReplicaSet]) -> V1ReplicaSet | None:
    """Step 4 (`FindNewReplicaSet`): oldest first (then by name), the first with the Deployment's template."""
    ordered = sorted(owned, key=lambda rs: (created_at(rs) or EPOCH, name_of(rs)))
    template = dep.spec.template if dep.spec else None
    return next(
        (rs for rs in ordered if equal_ignore_hash(api, rs.spec.template if rs.spec else None, template)),
        None,
    )


def all_replica_sets(
    api: ApiClient, dep: V1Deployment, workload: Workload
) -> tuple[list[V1ReplicaSet], V1ReplicaSet | None]:
    """`GetAllReplicaSets`: the old ones in list order, then the new one last; and the new one."""
    owned = _owned_replica_sets(api, dep, workload)
    new_rs = _find_new_rs(api, dep, owned)
    ordered = [rs for rs in owned if rs is not new_rs]
    if new_rs is not None:
        ordered.append(new_rs)
    return ordered, new_rs


def revision_of(obj: V1ReplicaSet | V1Deployment) -> int | None:
    """`deploymentutil.Revision`: a missing annotation is 0; an unparsable one is None (skipped)."""
    raw = annotations_of(obj).get(REVISION_ANNOTATION)
    if raw is None:
        return 0
    return int(raw) if _REVISION_RE.fullmatch(raw) else None


def images_of(template: V1PodTemplateSpec | None) -> list[str]:
    containers = (template.spec.containers if template and template.spec else None) or []
    return [c.image or "" for c in containers]


def revision_model(rs: V1ReplicaSet, revision: int, current: bool) -> Revision:
    return Revision(
        revision=revision,
        replica_set=name_of(rs),
        change_cause=annotations_of(rs).get(CHANGE_CAUSE_ANNOTATION),
        images=images_of(rs.spec.template if rs.spec else None),
        created_at=created_at(rs),
        current=current,
        replicas=(rs.spec.replicas if rs.spec else None) or 0,
        ready_replicas=(rs.status.ready_replicas if rs.status else None) or 0,
        template_hash=((rs.metadata.labels if rs.metadata else None) or {}).get(POD_TEMPLATE_HASH_LABEL),
    )
