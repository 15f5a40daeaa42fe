"""kubectl's algorithms, reproduced with the official `kubernetes` client (sync API). No Prefect here.

Usage::

    from tasks.clients import kubernetes_api
    from tasks.kubectl import last_rollout, rollout_undo, wait_for_rollout
    from tasks.k8s_models import Workload

    api = kubernetes_api(settings)
    web = Workload(namespace="prod", name="web")
    undo = rollout_undo(api, web)                       # kubectl rollout undo deployment/web
    wait_for_rollout(api, web, deadline_s=300, poll_interval_s=2)

Each function does what the named kubectl command does, as `kubectl` does it (sources in
`shared/reference/kubernetes.md`), and returns a model from `tasks.k8s_models`. Every request carries a
timeout (`tasks.clients.request_timeout_s`). Failures are raised as `KubernetesError` subclasses;
`is_transient(exc)` tells the ones worth retrying (5xx, 429, connection errors, timeouts).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import urllib3.exceptions
from kubernetes.client import (
    ApiClient,
    ApisApi,
    AppsV1Api,
    CoreV1Api,
    CoreV1Event,
    CustomObjectsApi,
    V1Container,
    V1Deployment,
    V1LabelSelector,
    V1Pod,
    V1PodTemplateSpec,
    V1ReplicaSet,
)
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from runbook.errors import RunbookError
from tasks.clients import request_timeout_s
from tasks.k8s_models import (
    ContainerUsage,
    DeploymentLogs,
    EnvChange,
    EventInfo,
    NodeUsage,
    PodUsage,
    Replicas,
    RestartResult,
    Revision,
    RolloutState,
    RolloutStatus,
    ScaleResult,
    SortBy,
    UndoResult,
    Workload,
)

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
    "is_transient",
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

log = logging.getLogger(__name__)

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
# rollback.go annotationsToSkip: kept from the Deployment, never copied from the ReplicaSet.
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
METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"
_LIST_PAGE_SIZE = 500
_MAX_LIST_PAGES = 200  # 100 000 objects: a bound on the paging loop, far above any real namespace
_REVISION_RE = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.ParseInt(v, 10, 64) accepts
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- errors -----------------------------------------------------------------------------------------------


class KubernetesError(RunbookError):
    """A Kubernetes operation failed. `transient` says whether trying again may help."""

    transient: bool = False


class WorkloadNotFound(KubernetesError):
    """404: the Deployment (or the object named in the message) does not exist."""


class Conflict(KubernetesError):
    """409: the object changed under us (resourceVersion conflict) or already exists."""


class KubernetesUnavailable(KubernetesError):
    """The API server could not answer: 5xx, 429, refused connection, timeout. Worth retrying."""

    transient = True


class KubernetesRequestFailed(KubernetesError):
    """Any other refusal by the API server (400, 401, 403, 415, 422...): retrying will not help."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NoRolloutHistory(KubernetesError):
    """`rollout undo` to the previous revision, but the Deployment has only one."""


class RevisionNotFound(KubernetesError):
    """`rollout undo --to-revision=N` with no ReplicaSet at revision N."""


class DeploymentPaused(KubernetesError):
    """Undo and restart refuse a paused Deployment, as kubectl does."""


class RolloutFailed(KubernetesError):
    """`rollout status` answered with an error (progress deadline exceeded, revision changed)."""

    def __init__(self, status: RolloutStatus) -> None:
        super().__init__(status.message)
        self.status = status


class RolloutTimedOut(KubernetesError):
    """`wait_for_rollout` ran out of time; `last` is the last status seen (None if none was read)."""

    def __init__(self, workload: Workload, deadline_s: float, last: RolloutStatus | None) -> None:
        seen = last.message if last is not None else "no status could be read"
        super().__init__(
            f'deployment "{workload.name}" did not finish rolling out within {deadline_s:g}s: {seen}'
        )
        self.workload = workload
        self.deadline_s = deadline_s
        self.last = last


class NoPodsFound(KubernetesError):
    """`deployment_logs` found no pod for the Deployment's selector."""


class ContainerNotFound(KubernetesError):
    """The container named by the workload is not in the pod template or the pod."""


class MetricsUnavailable(KubernetesError):
    """`/apis` does not list metrics.k8s.io v1beta1 (no metrics-server)."""


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: `KubernetesUnavailable`, or a raw 5xx/429/connection error.

    Usage: `retry_condition_fn` of the Prefect tasks wrapping this module.
    """
    if isinstance(exc, KubernetesError):
        return exc.transient
    if isinstance(exc, ApiException):
        return _status_is_transient(exc.status)
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def _status_is_transient(status: int | None) -> bool:
    return status is not None and (status >= 500 or status == 429)


def _server_message(exc: ApiException) -> str:
    """The `message` of the Status object the server replied with, else the HTTP reason."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            status = json.loads(body)
        except ValueError:
            return body.strip()[:500]
        if isinstance(status, dict) and isinstance(status.get("message"), str):
            return str(status["message"])
    return f"{exc.status} {exc.reason}"


@contextmanager
def _kube(what: str) -> Iterator[None]:
    """Turn the client's exceptions into ours; `what` leads the message (`reading deployment/web in prod`)."""
    try:
        yield
    except ApiException as exc:
        message = f"{what}: {_server_message(exc)}"
        if exc.status == 404:
            raise WorkloadNotFound(message) from exc
        if exc.status == 409:
            raise Conflict(message) from exc
        if _status_is_transient(exc.status):
            raise KubernetesUnavailable(message) from exc
        raise KubernetesRequestFailed(message, status=exc.status) from exc
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
        raise KubernetesUnavailable(f"{what}: {exc}") from exc


# --- shared reads -----------------------------------------------------------------------------------------


def _read_deployment(api: ApiClient, workload: Workload) -> V1Deployment:
    with _kube(f"reading {workload}"):
        return AppsV1Api(api).read_namespaced_deployment(
            workload.name, workload.namespace, _request_timeout=request_timeout_s(api)
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


def _owned_replica_sets(api: ApiClient, dep: V1Deployment, workload: Workload) -> list[V1ReplicaSet]:
    """Undo/history step 3: ReplicaSets matching the selector, controlled (ownerRef) by this Deployment."""
    selector = label_selector_string(dep.spec.selector if dep.spec else None)
    uid = dep.metadata.uid if dep.metadata else None
    apps = AppsV1Api(api)
    found: list[V1ReplicaSet] = []
    token: str | None = None
    for _page in range(_MAX_LIST_PAGES):
        with _kube(f"listing ReplicaSets of {workload}"):
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


def _template_json(api: ApiClient, template: V1PodTemplateSpec | None) -> dict[str, Any]:
    """The template as the API's camelCase JSON, without the `pod-template-hash` label (step 9)."""
    data: dict[str, Any] = api.sanitize_for_serialization(template) or {}
    metadata = data.get("metadata") or {}
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
        if not labels:
            del metadata["labels"]
    return data


def _equal_ignore_hash(api: ApiClient, a: V1PodTemplateSpec | None, b: V1PodTemplateSpec | None) -> bool:
    """`EqualIgnoreHash`: templates equal once the `pod-template-hash` label is removed from both."""
    return _semantic(_template_json(api, a)) == _semantic(_template_json(api, b))


def _creation(obj: V1ReplicaSet | V1Pod) -> datetime | None:
    return _aware(obj.metadata.creation_timestamp) if obj.metadata else None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _name(obj: V1ReplicaSet | V1Pod | V1Deployment) -> str:
    return (obj.metadata.name if obj.metadata else None) or ""


def _annotations(obj: V1ReplicaSet | V1Deployment) -> dict[str, str]:
    return dict((obj.metadata.annotations if obj.metadata else None) or {})


def _find_new_rs(api: ApiClient, dep: V1Deployment, owned: list[V1ReplicaSet]) -> V1ReplicaSet | None:
    """Step 4 (`FindNewReplicaSet`): oldest first (then by name), the first with the Deployment's template."""
    ordered = sorted(owned, key=lambda rs: (_creation(rs) or _EPOCH, _name(rs)))
    template = dep.spec.template if dep.spec else None
    return next(
        (rs for rs in ordered if _equal_ignore_hash(api, rs.spec.template if rs.spec else None, template)),
        None,
    )


def _all_replica_sets(
    api: ApiClient, dep: V1Deployment, workload: Workload
) -> tuple[list[V1ReplicaSet], V1ReplicaSet | None]:
    """`GetAllReplicaSets`: the old ones in list order, then the new one last; and the new one."""
    owned = _owned_replica_sets(api, dep, workload)
    new_rs = _find_new_rs(api, dep, owned)
    ordered = [rs for rs in owned if rs is not new_rs]
    if new_rs is not None:
        ordered.append(new_rs)
    return ordered, new_rs


def _revision(obj: V1ReplicaSet | V1Deployment) -> int | None:
    """`deploymentutil.Revision`: a missing annotation is 0; an unparsable one is None (skipped)."""
    raw = _annotations(obj).get(REVISION_ANNOTATION)
    if raw is None:
        return 0
    return int(raw) if _REVISION_RE.fullmatch(raw) else None


def _images(template: V1PodTemplateSpec | None) -> list[str]:
    containers = (template.spec.containers if template and template.spec else None) or []
    return [c.image or "" for c in containers]


def _to_revision_model(rs: V1ReplicaSet, revision: int, current: bool) -> Revision:
    return Revision(
        revision=revision,
        replica_set=_name(rs),
        change_cause=_annotations(rs).get(CHANGE_CAUSE_ANNOTATION),
        images=_images(rs.spec.template if rs.spec else None),
        created_at=_creation(rs),
        current=current,
        replicas=(rs.spec.replicas if rs.spec else None) or 0,
    )


# --- rollout history / undo -------------------------------------------------------------------------------


def rollout_history(api: ApiClient, workload: Workload) -> list[Revision]:
    """`kubectl rollout history deployment/X`: one `Revision` per revision number, oldest first.

    Only ReplicaSets the Deployment controls count; a ReplicaSet with an unparsable revision is left out
    (kubectl logs a warning), and when two share a number the later in list order wins, as in kubectl's map.
    """
    dep = _read_deployment(api, workload)
    replica_sets, new_rs = _all_replica_sets(api, dep, workload)
    by_revision: dict[int, Revision] = {}
    for rs in replica_sets:
        revision = _revision(rs)
        if revision is None:
            log.warning("ReplicaSet %s of %s has an unparsable revision; skipped", _name(rs), workload)
            continue
        by_revision[revision] = _to_revision_model(rs, revision, current=rs is new_rs)
    return [by_revision[n] for n in sorted(by_revision)]


def last_rollout(api: ApiClient, workload: Workload) -> Revision | None:
    """The revision running now, with its ReplicaSet's creation time: "was it deployed in the last 15 min?"

    The ReplicaSet whose template is the Deployment's; before the controller has made it, the highest
    revision. None when the Deployment has no ReplicaSet at all.
    """
    history = rollout_history(api, workload)
    current = [r for r in history if r.current]
    if current:
        return current[-1]
    return history[-1] if history else None


def rollout_undo(
    api: ApiClient, workload: Workload, to_revision: int = 0, dry_run: bool = False
) -> UndoResult:
    """`kubectl rollout undo deployment/X [--to-revision=N] [--dry-run=server]` (rollback.go), step by step.

    `to_revision=0` restores the previous revision (the second-highest number). Raises `RevisionNotFound`,
    `NoRolloutHistory` or `DeploymentPaused` with kubectl's messages. When the chosen revision's template
    is already the Deployment's, nothing is sent and the result says `skipped`. `dry_run` sends the patch
    with `dryRun=All`: the server validates it and persists nothing.
    """
    # 1. a negative revision cannot exist
    if to_revision < 0:
        raise RevisionNotFound(f"unable to find specified revision {to_revision} in history")
    # 2-5. the Deployment, its ReplicaSets, the one to restore
    dep = _read_deployment(api, workload)
    replica_sets, _new_rs = _all_replica_sets(api, dep, workload)
    target, target_revision = _revision_to_restore(replica_sets, to_revision, workload)
    # 7. paused: refused, after the lookup (as kubectl orders it)
    if dep.spec is not None and dep.spec.paused:
        raise DeploymentPaused(
            "you cannot rollback a paused deployment; "
            "resume it first with 'kubectl rollout resume' and try again"
        )
    result = functools.partial(
        UndoResult,
        workload=workload,
        from_revision=_revision(dep),
        to_revision=target_revision,
        replica_set=_name(target),
        images=_images(target.spec.template if target.spec else None),
        dry_run=dry_run,
    )
    suffix = " (server dry run)" if dry_run else ""
    # 8. already the running template: nothing to do
    if _equal_ignore_hash(
        api, target.spec.template if target.spec else None, dep.spec.template if dep.spec else None
    ):
        return result(
            skipped=True,
            message=f"deployment.apps/{workload.name} skipped rollback "
            f"(current template already matches revision {target_revision}){suffix}",
        )
    # 9. the ReplicaSet's template without its hash label
    template = _template_json(api, target.spec.template if target.spec else None)
    # 10. skip-list annotations from the Deployment, every other one from the ReplicaSet
    dep_annotations = _annotations(dep)
    annotations = {key: dep_annotations[key] for key in ANNOTATIONS_TO_SKIP if key in dep_annotations}
    annotations.update({k: v for k, v in _annotations(target).items() if k not in ANNOTATIONS_TO_SKIP})
    if LAST_APPLIED_ANNOTATION in dep_annotations:
        log.warning(
            "%s was previously managed with 'kubectl apply'; the next apply will undo this rollback", workload
        )
    # 11. JSON Patch, sent as a list so the client says application/json-patch+json
    has_annotations = dep.metadata is not None and dep.metadata.annotations is not None
    patch: list[dict[str, Any]] = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {
            "op": "replace" if has_annotations else "add",
            "path": "/metadata/annotations",
            "value": annotations,
        },
    ]
    with _kube(f"failed restoring revision {target_revision} of {workload}"):
        AppsV1Api(api).patch_namespaced_deployment(
            workload.name,
            workload.namespace,
            patch,
            dry_run="All" if dry_run else None,
            _request_timeout=request_timeout_s(api),
        )
    return result(skipped=False, message=f"deployment.apps/{workload.name} rolled back{suffix}")


def _revision_to_restore(
    replica_sets: list[V1ReplicaSet], to_revision: int, workload: Workload
) -> tuple[V1ReplicaSet, int]:
    """`deploymentRevision`: the exact revision, or for 0 the second-highest one."""
    latest: tuple[V1ReplicaSet, int] | None = None
    previous: tuple[V1ReplicaSet, int] | None = None
    for rs in replica_sets:
        revision = _revision(rs)
        if revision is None:
            continue
        if to_revision == 0:
            if latest is None or latest[1] < revision:
                previous, latest = latest, (rs, revision)
            elif previous is None or previous[1] < revision:
                previous = (rs, revision)
        elif revision == to_revision:
            return rs, revision
    if to_revision > 0:
        raise RevisionNotFound(f"unable to find specified revision {to_revision} in history")
    if previous is None:
        raise NoRolloutHistory(f'no rollout history found for deployment "{workload.name}"')
    return previous


# --- rollout status ---------------------------------------------------------------------------------------


def rollout_status(api: ApiClient, workload: Workload, revision: int = 0) -> RolloutStatus:
    """`kubectl rollout status deployment/X` once (`DeploymentStatusViewer.Status`), with kubectl's messages.

    FAILED when the progress deadline was exceeded or, with `revision`, when the Deployment moved to
    another revision; WAITING with kubectl's reason; DONE when every replica is updated and available.
    """
    dep = _read_deployment(api, workload)
    spec, status, meta = dep.spec, dep.status, dep.metadata
    name = f'"{workload.name}"'
    generation = (meta.generation if meta else None) or 0
    observed = (status.observed_generation if status else None) or 0
    desired = spec.replicas if spec else None
    replicas = (status.replicas if status else None) or 0
    updated = (status.updated_replicas if status else None) or 0
    available = (status.available_replicas if status else None) or 0
    running = _revision(dep)

    def answer(state: RolloutState, message: str) -> RolloutStatus:
        return RolloutStatus(
            workload=workload,
            state=state,
            message=message,
            revision=running,
            generation=generation,
            observed_generation=observed,
            desired=desired,
            replicas=replicas,
            updated=updated,
            ready=(status.ready_replicas if status else None) or 0,
            available=available,
        )

    if revision > 0:
        if running is None:
            return answer(RolloutState.FAILED, f"cannot get the revision of deployment {name}")
        if running != revision:
            return answer(
                RolloutState.FAILED,
                f"desired revision ({revision}) is different from the running revision ({running})",
            )
    if generation <= observed:
        conditions = (status.conditions if status else None) or []
        progressing = next((c for c in conditions if c.type == "Progressing"), None)
        if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
            return answer(RolloutState.FAILED, f"deployment {name} exceeded its progress deadline")
        waiting = f"Waiting for deployment {name} rollout to finish: "
        if desired is not None and updated < desired:
            return answer(
                RolloutState.WAITING, f"{waiting}{updated} out of {desired} new replicas have been updated..."
            )
        if replicas > updated:
            return answer(
                RolloutState.WAITING, f"{waiting}{replicas - updated} old replicas are pending termination..."
            )
        if available < updated:
            return answer(
                RolloutState.WAITING, f"{waiting}{available} of {updated} updated replicas are available..."
            )
        return answer(RolloutState.DONE, f"deployment {name} successfully rolled out")
    return answer(RolloutState.WAITING, "Waiting for deployment spec update to be observed...")


def wait_for_rollout(
    api: ApiClient,
    workload: Workload,
    deadline_s: float,
    poll_interval_s: float = 2.0,
    revision: int = 0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutStatus:
    """`kubectl rollout status --timeout=<deadline_s>s`: poll until DONE, FAILED or the deadline.

    Returns the DONE status; raises `RolloutFailed` (progress deadline exceeded, revision changed),
    `RolloutTimedOut` (with the last status seen) or `WorkloadNotFound` (deleted while waiting, which
    kubectl also aborts on). A transient read error is logged and polled through until the deadline.
    """
    if deadline_s < 0 or poll_interval_s <= 0:
        raise ValueError(
            f"deadline_s must be >= 0 and poll_interval_s > 0 (got {deadline_s}, {poll_interval_s})"
        )
    deadline = clock() + deadline_s
    last: RolloutStatus | None = None
    last_error: KubernetesUnavailable | None = None
    while True:
        try:
            status = rollout_status(api, workload, revision)
        except KubernetesUnavailable as exc:
            last_error = exc
            log.warning("rollout status of %s: %s (will poll again)", workload, exc)
        else:
            last = status
            if status.state is RolloutState.DONE:
                return status
            if status.state is RolloutState.FAILED:
                raise RolloutFailed(status)
            log.info("%s", status.message)
        remaining = deadline - clock()
        if remaining <= 0:
            raise RolloutTimedOut(workload, deadline_s, last) from last_error
        sleep(min(poll_interval_s, remaining))


# --- scale / set env / restart ----------------------------------------------------------------------------


def scale(api: ApiClient, workload: Workload, replicas: int, dry_run: bool = False) -> ScaleResult:
    """`kubectl scale deployment/X --replicas=N`: a merge patch of the `/scale` subresource.

    Reads `/scale` first to report the previous count; sends nothing when it is already `replicas`.
    """
    if replicas < 0:
        raise ValueError(f"replicas must be >= 0 (got {replicas})")
    apps = AppsV1Api(api)
    with _kube(f"reading the scale of {workload}"):
        current = apps.read_namespaced_deployment_scale(
            workload.name, workload.namespace, _request_timeout=request_timeout_s(api)
        )
    previous = (current.spec.replicas if current.spec else None) or 0
    if previous == replicas:
        return ScaleResult(
            workload=workload, previous_replicas=previous, replicas=replicas, changed=False, dry_run=dry_run
        )
    with _kube(f"scaling {workload} to {replicas}"):
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


def _pick_container(
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


def _template_container(dep: V1Deployment, workload: Workload) -> V1Container:
    template = dep.spec.template if dep.spec else None
    containers = (template.spec.containers if template and template.spec else None) or []
    annotations = (template.metadata.annotations if template and template.metadata else None) or {}
    return _pick_container(containers, annotations, workload, f"the pod template of {workload}")


def get_deployment_env(api: ApiClient, workload: Workload) -> dict[str, str]:
    """The literal env of the workload's container (`kubectl set env deployment/X --list`).

    Variables set from a source (`valueFrom`) are left out: they have no value in the Deployment.
    """
    container = _template_container(_read_deployment(api, workload), workload)
    return {e.name: e.value or "" for e in container.env or [] if e.value_from is None}


def get_replicas(api: ApiClient, workload: Workload) -> Replicas:
    """The Deployment's desired, current, updated, ready and available replicas."""
    dep = _read_deployment(api, workload)
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
    dep = _read_deployment(api, workload)
    container = _template_container(dep, workload)
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
    with _kube(f"setting env on {workload}"):
        AppsV1Api(api).patch_namespaced_deployment(
            workload.name,
            workload.namespace,
            patch,
            dry_run="All" if dry_run else None,
            _content_type="application/strategic-merge-patch+json",
            _request_timeout=request_timeout_s(api),
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
    dep = _read_deployment(api, workload)
    if dep.spec is not None and dep.spec.paused:
        raise DeploymentPaused("can't restart paused deployment (run rollout resume first)")
    stamp = _rfc3339(now)
    template = dep.spec.template if dep.spec else None
    existing = (template.metadata.annotations if template and template.metadata else None) or {}
    if existing.get(RESTARTED_AT_ANNOTATION) == stamp:
        return RestartResult(workload=workload, restarted_at=stamp, changed=False, dry_run=dry_run)
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}}
    with _kube(f"restarting {workload}"):
        AppsV1Api(api).patch_namespaced_deployment(
            workload.name,
            workload.namespace,
            patch,
            dry_run="All" if dry_run else None,
            _content_type="application/strategic-merge-patch+json",
            _request_timeout=request_timeout_s(api),
        )
    return RestartResult(workload=workload, restarted_at=stamp, changed=True, dry_run=dry_run)


# --- logs -------------------------------------------------------------------------------------------------


def _ready_condition(pod: V1Pod) -> Any:
    conditions = (pod.status.conditions if pod.status else None) or []
    return next((c for c in conditions if c.type == "Ready" and c.status == "True"), None)


def _is_ready(pod: V1Pod) -> bool:
    """podutils.IsPodReady: the Ready condition is True."""
    return _ready_condition(pod) is not None


def _ready_since(pod: V1Pod) -> datetime | None:
    """podReadyTime: when the Ready condition last turned True (None: zero time)."""
    cond = _ready_condition(pod)
    return _aware(cond.last_transition_time) if cond is not None else None


def _after_or_zero(t1: datetime | None, t2: datetime | None) -> bool:
    """podutils.afterOrZero: a zero time sorts last."""
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _max_restarts(pod: V1Pod) -> tuple[int, int]:
    status, spec = pod.status, pod.spec
    regular = max(
        [c.restart_count or 0 for c in (status.container_statuses if status else None) or []], default=0
    )
    sidecars = {
        c.name for c in (spec.init_containers if spec else None) or [] if c.restart_policy == "Always"
    }
    sidecar = max(
        [
            c.restart_count or 0
            for c in (status.init_container_statuses if status else None) or []
            if c.name in sidecars
        ],
        default=0,
    )
    return regular, sidecar


_PHASE_ORDER = {"Running": 0, "Unknown": 1, "Pending": 2}


def _by_logging_less(a: V1Pod, b: V1Pod) -> bool:
    """podutils.ByLogging.Less: the pod `kubectl logs deployment/X` prefers sorts first."""
    node_a = (a.spec.node_name if a.spec else None) or ""
    node_b = (b.spec.node_name if b.spec else None) or ""
    # 1. assigned before unassigned
    if node_a != node_b and (not node_a or not node_b):
        return bool(node_a)
    # 2. Running < Unknown < Pending (any other phase counts as Running, as Go's map lookup does)
    phase_a = _PHASE_ORDER.get((a.status.phase if a.status else None) or "", 0)
    phase_b = _PHASE_ORDER.get((b.status.phase if b.status else None) or "", 0)
    if phase_a != phase_b:
        return phase_a < phase_b
    # 3. ready before not ready
    ready_a, ready_b = _is_ready(a), _is_ready(b)
    if ready_a != ready_b:
        return ready_a
    # 4. ready for longer first
    if ready_a and ready_b:
        since_a, since_b = _ready_since(a), _ready_since(b)
        if since_a != since_b:
            return _after_or_zero(since_b, since_a)
    # 5. more restarts first
    restarts_a, restarts_b = _max_restarts(a), _max_restarts(b)
    if restarts_a[0] != restarts_b[0]:
        return restarts_a[0] > restarts_b[0]
    if restarts_a[1] != restarts_b[1]:
        return restarts_a[1] > restarts_b[1]
    # 6. older first
    created_a, created_b = _creation(a), _creation(b)
    if created_a != created_b:
        return _after_or_zero(created_b, created_a)
    return False


def _by_logging(a: V1Pod, b: V1Pod) -> int:
    if _by_logging_less(a, b):
        return -1
    return 1 if _by_logging_less(b, a) else 0


def choose_log_pod(pods: list[V1Pod]) -> V1Pod | None:
    """The first pod in kubectl's ByLogging order, or None for an empty list."""
    ordered = sorted(pods, key=functools.cmp_to_key(_by_logging))
    return ordered[0] if ordered else None


def deployment_logs(
    api: ApiClient,
    workload: Workload,
    tail_lines: int | None = 100,
    grep: str | None = None,
    previous: bool = False,
) -> DeploymentLogs:
    """`kubectl logs deployment/X --tail=100 [-c C] [--previous]`, optionally filtered by a regex.

    The pod is the one kubectl picks (pods matching the selector, ByLogging order); the container is the
    workload's, else the pod's default-container annotation's, else the first. `grep` is searched
    case-insensitively; the matching lines come back in `matches`. `tail_lines=None` reads the whole log.
    """
    pattern = None
    if grep is not None:
        try:
            pattern = re.compile(grep, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"grep: not a valid regular expression ({exc})") from exc
    if tail_lines is not None and tail_lines < 0:
        raise ValueError(f"tail_lines must be >= 0 or None (got {tail_lines})")
    dep = _read_deployment(api, workload)
    selector = label_selector_string(dep.spec.selector if dep.spec else None)
    core = CoreV1Api(api)
    with _kube(f"listing pods of {workload}"):
        pods = core.list_namespaced_pod(
            workload.namespace, label_selector=selector, _request_timeout=request_timeout_s(api)
        ).items
    pod = choose_log_pod(pods)
    if pod is None:
        raise NoPodsFound(
            f'no pods found for deployment "{workload.name}" in namespace "{workload.namespace}"'
        )
    pod_name = _name(pod)
    containers = (pod.spec.containers if pod.spec else None) or []
    annotations = (pod.metadata.annotations if pod.metadata else None) or {}
    container = _pick_container(containers, annotations, workload, f"pod {pod_name}")
    with _kube(f"reading the log of pod {pod_name} ({container.name})"):
        text = core.read_namespaced_pod_log(
            pod_name,
            workload.namespace,
            container=container.name,
            tail_lines=tail_lines,
            previous=previous or None,
            _request_timeout=request_timeout_s(api),
        )
    lines = str(text or "").splitlines()
    return DeploymentLogs(
        workload=workload,
        pod=pod_name,
        container=container.name,
        lines=lines,
        pattern=grep,
        matches=[line for line in lines if pattern.search(line)] if pattern else [],
    )


# --- events -----------------------------------------------------------------------------------------------


def _event_time(event: CoreV1Event) -> datetime | None:
    """kubectl --sort-by=.lastTimestamp, with events.k8s.io events (no lastTimestamp) placed by eventTime."""
    created = event.metadata.creation_timestamp if event.metadata else None
    return _aware(event.last_timestamp or event.event_time or event.first_timestamp or created)


def list_events(
    api: ApiClient, namespace: str, involved_name: str | None = None, limit: int = 50
) -> list[EventInfo]:
    """`kubectl get events -n NS [--field-selector involvedObject.name=X] --sort-by=.lastTimestamp`.

    Oldest first, as kubectl prints them; only the newest `limit` are kept.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1 (got {limit})")
    selector = f"involvedObject.name={involved_name}" if involved_name else None
    with _kube(f"listing events in {namespace}"):
        events = (
            CoreV1Api(api)
            .list_namespaced_event(
                namespace, field_selector=selector, _request_timeout=request_timeout_s(api)
            )
            .items
        )
    events.sort(key=lambda e: _event_time(e) or _EPOCH)
    return [
        EventInfo(
            type=e.type,
            reason=e.reason,
            message=e.message,
            kind=e.involved_object.kind,
            name=e.involved_object.name,
            count=e.count,
            last_seen=_event_time(e),
            source=(e.source.component if e.source else None) or e.reporting_component,
        )
        for e in events[-limit:]
    ]


# --- top --------------------------------------------------------------------------------------------------


def _require_metrics_api(api: ApiClient) -> None:
    """kubectl top's discovery check: `/apis` must list metrics.k8s.io with v1beta1."""
    with _kube("discovering API groups"):
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
    with _kube(f"reading pod metrics in {namespace}"):
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
    with _kube("reading node metrics"):
        body = CustomObjectsApi(api).list_cluster_custom_object(
            METRICS_GROUP, METRICS_VERSION, "nodes", _request_timeout=request_timeout_s(api)
        )
    with _kube("listing nodes"):
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
