"""`kubectl rollout history | undo | status`, and waiting for a rollout to finish.

Usage::

    last_rollout(api, web)                                # the revision running now (Revision | None)
    rollout_facts(api, web)                               # revisions, when each became live, readiness
    rollout_undo(api, web, dry_run=True)                  # kubectl rollout undo --dry-run=server
    rollout_undo(api, web, to_revision=2, expect_revision=3)   # ... only while revision 3 is live
    wait_for_rollout(api, web, deadline_s=300, poll_interval_s=2)

Each function follows kubectl's own code (rollback.go, rollout_status.go) step by step, with its messages.
Two additions kubectl does not have, both for a runbook deciding on fresh facts: `rollout_facts` reads
when each revision became live from the Deployment's `ScalingReplicaSet` events (a re-deploy reuses the
old ReplicaSet, so its creation time is not the deploy time), and `rollout_undo(expect_revision=N)` makes
the patch conditional on the live revision still being N (a JSON Patch `test` op, checked by the API
server atomically with the write; refused with `RevisionChanged`).
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient, V1Deployment, V1ReplicaSet

from kubeops.errors import (
    DeploymentPaused,
    KubernetesError,
    KubernetesRequestFailed,
    KubernetesUnavailable,
    NoRolloutHistory,
    RevisionNotFound,
    RolloutFailed,
    RolloutTimedOut,
)
from kubeops.events import list_events
from kubeops.models import Revision, RolloutFacts, RolloutState, RolloutStatus, UndoResult, Workload
from kubeops.objects import (
    LAST_APPLIED_ANNOTATION,
    REVISION_ANNOTATION,
    annotations_of,
    aware,
    name_of,
    patch_deployment,
    read_deployment,
)
from kubeops.replicasets import (
    ANNOTATIONS_TO_SKIP,
    all_replica_sets,
    equal_ignore_hash,
    images_of,
    revision_model,
    revision_of,
    template_json,
)

log = logging.getLogger(__name__)

# The deployment controller's words for scaling a ReplicaSet up: `... to N from M` (Kubernetes 1.27+),
# `... from M to N` (some controllers and emulators). `... to N` alone (creation, or scaling before 1.27)
# says nothing about the size before, so it is not read as a go-live.
_SCALED_UP = re.compile(
    r"^Scaled up replica set (?P<rs>\S+) (?:to (?P<to>\d+) from (?P<from>\d+)|from (?P<from2>\d+) to \d+)$"
)
_MAX_EVENTS = 10_000  # the events of one Deployment kept by the API server (an hour's worth): all of them
_REVISION_POINTER = "/metadata/annotations/" + REVISION_ANNOTATION.replace("~", "~0").replace("/", "~1")


class RevisionChanged(KubernetesError):
    """`rollout_undo(expect_revision=N)`: the live revision is no longer N; nothing was written."""

    def __init__(self, message: str, live_revision: int | None) -> None:
        super().__init__(message)
        self.live_revision = live_revision


def rollout_history(api: ApiClient, workload: Workload) -> list[Revision]:
    """`kubectl rollout history deployment/X`: one `Revision` per revision number, oldest first.

    Only ReplicaSets the Deployment controls count; a ReplicaSet with an unparsable revision is left out
    (kubectl logs a warning), and when two share a number the later in list order wins, as in kubectl's map.
    """
    return _history(api, read_deployment(api, workload), workload)


def _history(api: ApiClient, dep: V1Deployment, workload: Workload) -> list[Revision]:
    replica_sets, new_rs = all_replica_sets(api, dep, workload)
    by_revision: dict[int, Revision] = {}
    for rs in replica_sets:
        revision = revision_of(rs)
        if revision is None:
            log.warning("ReplicaSet %s of %s has an unparsable revision; skipped", name_of(rs), workload)
            continue
        by_revision[revision] = revision_model(rs, revision, current=rs is new_rs)
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


def rollout_facts(api: ApiClient, workload: Workload) -> RolloutFacts:
    """The rollout history with, per revision, when it last became live and its ready pods now; the live
    revision; since when the Deployment has been `Available`.

    "Became live" is the newest `ScalingReplicaSet` event on the Deployment scaling the revision's
    ReplicaSet up from 0 (its `lastTimestamp`, as aggregated repeats keep it); without one (events expire
    after an hour, `--event-ttl`) the ReplicaSet's creation time, which is then older still.
    """
    dep = read_deployment(api, workload)
    history = _history(api, dep, workload)
    went_live = _go_live_times(api, workload)

    def deployed(found: Revision) -> datetime | None:
        scaled, created = went_live.get(found.replica_set), found.created_at
        return scaled if scaled is not None and (created is None or scaled >= created) else created

    return RolloutFacts(
        workload=workload,
        revisions=[r.model_copy(update={"deployed_at": deployed(r)}) for r in history],
        live_revision=revision_of(dep),
        available_since=_available_since(dep),
        read_at=_now(),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _go_live_times(api: ApiClient, workload: Workload) -> dict[str, datetime]:
    """ReplicaSet name → the newest time the Deployment's controller scaled it up from 0."""
    latest: dict[str, datetime] = {}
    for event in list_events(api, workload.namespace, involved_name=workload.name, limit=_MAX_EVENTS):
        match = _SCALED_UP.match(event.message or "")
        if event.kind != "Deployment" or event.reason != "ScalingReplicaSet" or event.last_seen is None:
            continue
        if match is None or int(match["from"] or match["from2"]) != 0:
            continue
        if match["rs"] not in latest or latest[match["rs"]] < event.last_seen:
            latest[match["rs"]] = event.last_seen
    return latest


def _available_since(dep: V1Deployment) -> datetime | None:
    conditions = (dep.status.conditions if dep.status else None) or []
    available = next((c for c in conditions if c.type == "Available"), None)
    if available is None or available.status != "True":
        return None
    return aware(available.last_transition_time)


def rollout_undo(
    api: ApiClient,
    workload: Workload,
    to_revision: int = 0,
    dry_run: bool = False,
    expect_revision: int | None = None,
) -> UndoResult:
    """`kubectl rollout undo deployment/X [--to-revision=N] [--dry-run=server]` (rollback.go), step by step.

    `to_revision=0` restores the previous revision (the second-highest number). Raises `RevisionNotFound`,
    `NoRolloutHistory` or `DeploymentPaused` with kubectl's messages. When the chosen revision's template
    is already the Deployment's, nothing is sent and the result says `skipped`. `dry_run` sends the patch
    with `dryRun=All`: the server validates it and persists nothing.

    `expect_revision` (not in kubectl): act only while the Deployment's revision is that one. Checked on
    the read and again by the API server inside the PATCH (a JSON Patch `test` op on the revision
    annotation, applied atomically with the write); otherwise `RevisionChanged`, nothing written.
    """
    # 1. a negative revision cannot exist
    if to_revision < 0:
        raise RevisionNotFound(f"unable to find specified revision {to_revision} in history")
    # 2-5. the Deployment, its ReplicaSets, the one to restore
    dep = read_deployment(api, workload)
    if expect_revision is not None and revision_of(dep) != expect_revision:
        raise RevisionChanged(
            f"{workload} is at revision {revision_of(dep)}, not {expect_revision}: not rolled back",
            revision_of(dep),
        )
    replica_sets, _new_rs = all_replica_sets(api, dep, workload)
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
        from_revision=revision_of(dep),
        to_revision=target_revision,
        replica_set=name_of(target),
        images=images_of(target.spec.template if target.spec else None),
        dry_run=dry_run,
    )
    suffix = " (server dry run)" if dry_run else ""
    # 8. already the running template: nothing to do
    if equal_ignore_hash(
        api, target.spec.template if target.spec else None, dep.spec.template if dep.spec else None
    ):
        return result(
            skipped=True,
            message=f"deployment.apps/{workload.name} skipped rollback "
            f"(current template already matches revision {target_revision}){suffix}",
        )
    # 9. the ReplicaSet's template without its hash label
    template = template_json(api, target.spec.template if target.spec else None)
    # 10. skip-list annotations from the Deployment, every other one from the ReplicaSet
    dep_annotations = annotations_of(dep)
    annotations = {key: dep_annotations[key] for key in ANNOTATIONS_TO_SKIP if key in dep_annotations}
    annotations.update({k: v for k, v in annotations_of(target).items() if k not in ANNOTATIONS_TO_SKIP})
    if LAST_APPLIED_ANNOTATION in dep_annotations:
        log.warning(
            "%s was previously managed with 'kubectl apply'; the next apply will undo this rollback", workload
        )
    # 11. JSON Patch, sent as a list so the client says application/json-patch+json
    has_annotations = dep.metadata is not None and dep.metadata.annotations is not None
    guard = (
        [{"op": "test", "path": _REVISION_POINTER, "value": str(expect_revision)}]
        if expect_revision is not None
        else []
    )
    patch: list[dict[str, Any]] = [
        *guard,
        {"op": "replace", "path": "/spec/template", "value": template},
        {
            "op": "replace" if has_annotations else "add",
            "path": "/metadata/annotations",
            "value": annotations,
        },
    ]
    try:
        patch_deployment(
            api,
            workload,
            patch,
            what=f"failed restoring revision {target_revision} of {workload}",
            dry_run=dry_run,
        )
    except KubernetesRequestFailed as exc:
        # a failed `test` op is a 422; so is an invalid template: the revision read again tells them apart
        live = revision_of(read_deployment(api, workload)) if guard and exc.status == 422 else expect_revision
        if live == expect_revision:
            raise
        raise RevisionChanged(
            f"{workload} moved to revision {live} before the rollback landed: not rolled back", live
        ) from exc
    return result(skipped=False, message=f"deployment.apps/{workload.name} rolled back{suffix}")


def _revision_to_restore(
    replica_sets: list[V1ReplicaSet], to_revision: int, workload: Workload
) -> tuple[V1ReplicaSet, int]:
    """`deploymentRevision`: the exact revision, or for 0 the second-highest one."""
    latest: tuple[V1ReplicaSet, int] | None = None
    previous: tuple[V1ReplicaSet, int] | None = None
    for rs in replica_sets:
        revision = revision_of(rs)
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


def rollout_status(api: ApiClient, workload: Workload, revision: int = 0) -> RolloutStatus:
    """`kubectl rollout status deployment/X` once (`DeploymentStatusViewer.Status`), with kubectl's messages.

    FAILED when the progress deadline was exceeded or, with `revision`, when the Deployment moved to
    another revision; WAITING with kubectl's reason; DONE when every replica is updated and available.
    """
    dep = read_deployment(api, workload)
    spec, status, meta = dep.spec, dep.status, dep.metadata
    name = f'"{workload.name}"'
    generation = (meta.generation if meta else None) or 0
    observed = (status.observed_generation if status else None) or 0
    desired = spec.replicas if spec else None
    replicas = (status.replicas if status else None) or 0
    updated = (status.updated_replicas if status else None) or 0
    available = (status.available_replicas if status else None) or 0
    running = revision_of(dep)

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
