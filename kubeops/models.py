"""Typed inputs and outputs of the Kubernetes operations in `kubeops` (kubectl's algorithms).

Usage::

    web = Workload(namespace="prod", name="web")
    last = last_rollout(api, web)                    # -> Revision | None
    facts = rollout_facts(api, web)                  # -> RolloutFacts (revisions, when each went live)
    if last and last.within(timedelta(minutes=15), now=now):
        result = rollout_undo(api, web)              # -> UndoResult

Plain pydantic v2 models with no client objects inside, so they serialise into Prefect results,
artifacts and the incident timeline as they are.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ContainerUsage",
    "DeploymentLogs",
    "EnvChange",
    "EventInfo",
    "NodeUsage",
    "PodUsage",
    "Replicas",
    "RestartResult",
    "Revision",
    "RolloutFacts",
    "RolloutState",
    "RolloutStatus",
    "ScaleResult",
    "SortBy",
    "UndoResult",
    "Workload",
]

SortBy = Literal["cpu", "memory"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Workload(_Model):
    """One Deployment, and optionally the container of it that an operation is about."""

    namespace: str = Field(min_length=1, description="Namespace of the Deployment.")
    name: str = Field(min_length=1, description="Name of the Deployment.")
    container: str | None = Field(
        default=None,
        description="Container for logs and env; default: the `kubectl.kubernetes.io/default-container` "
        "annotation, else the first container.",
    )

    def __str__(self) -> str:
        return f"deployment/{self.name} in {self.namespace}"


class Revision(_Model):
    """One line of `kubectl rollout history`, with the ReplicaSet behind it, when it was created and when
    it last became live."""

    revision: int = Field(
        description="`deployment.kubernetes.io/revision` of the ReplicaSet (0 when missing)."
    )
    replica_set: str
    change_cause: str | None = Field(default=None, description="`kubernetes.io/change-cause`, if recorded.")
    images: list[str] = Field(default_factory=list, description="Container images, in template order.")
    created_at: datetime | None = Field(default=None, description="The ReplicaSet's creationTimestamp.")
    current: bool = Field(default=False, description="True for the ReplicaSet matching the live template.")
    replicas: int = Field(default=0, description="The ReplicaSet's desired replicas.")
    ready_replicas: int = Field(default=0, description="The ReplicaSet's `status.readyReplicas` now.")
    template_hash: str | None = Field(
        default=None, description="The ReplicaSet's `pod-template-hash` label: names the template."
    )
    deployed_at: datetime | None = Field(
        default=None,
        description="When this revision last became live: the Deployment's last `ScalingReplicaSet` "
        "event scaling its ReplicaSet up from 0 (a re-deploy reuses the ReplicaSet), else its creation.",
    )

    @property
    def live_since(self) -> datetime | None:
        """`deployed_at` where the events tell it, else the ReplicaSet's creation time."""
        return self.deployed_at or self.created_at

    def age(self, now: datetime) -> timedelta | None:
        """How long ago the revision became live, or None when no time is known."""
        since = self.live_since
        return None if since is None else now - since

    def within(self, window: timedelta, now: datetime) -> bool:
        """True when the revision became live no longer than `window` before `now`.

        Guide, Service Down step 3: "deployed in the last 15 minutes → roll back".
        """
        age = self.age(now)
        return age is not None and age <= window


class RolloutFacts(_Model):
    """What the API says about a Deployment's rollouts at one moment: its revisions (oldest first, each
    with when it became live and how many of its pods are ready), the live one, and since when the
    Deployment has been continuously `Available`."""

    workload: Workload
    revisions: list[Revision] = Field(default_factory=list)
    live_revision: int | None = Field(
        default=None, description="The Deployment's own `deployment.kubernetes.io/revision`."
    )
    available_since: datetime | None = Field(
        default=None,
        description="lastTransitionTime of the `Available=True` condition; None when not Available.",
    )
    read_at: datetime

    @property
    def live(self) -> Revision | None:
        """The revision whose template is the Deployment's; before the controller made it, the highest."""
        current = [r for r in self.revisions if r.current]
        if current:
            return current[-1]
        return self.revisions[-1] if self.revisions else None


class UndoResult(_Model):
    """What `rollout_undo` did: `kubectl rollout undo`'s outcome as data."""

    workload: Workload
    from_revision: int | None = Field(description="The Deployment's revision before the undo.")
    to_revision: int = Field(description="Revision rolled back to, numbered as before the undo.")
    replica_set: str = Field(description="The ReplicaSet whose template was restored.")
    images: list[str] = Field(default_factory=list, description="Images of the restored template.")
    skipped: bool = Field(description="True when the template already matched: nothing was sent.")
    dry_run: bool = False
    message: str = Field(description="kubectl's words: `rolled back` or `skipped rollback (...)`.")


class RolloutState(StrEnum):
    """The three answers of `kubectl rollout status`."""

    DONE = "done"
    WAITING = "waiting"
    FAILED = "failed"


class RolloutStatus(_Model):
    """`kubectl rollout status` once, with the numbers it looked at."""

    workload: Workload
    state: RolloutState
    message: str = Field(description="kubectl's message, without the trailing newline.")
    revision: int | None = None
    generation: int = 0
    observed_generation: int = 0
    desired: int | None = None
    replicas: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0

    @property
    def done(self) -> bool:
        return self.state is RolloutState.DONE


class ScaleResult(_Model):
    workload: Workload
    previous_replicas: int
    replicas: int
    changed: bool = Field(description="False when the Deployment already had that many replicas.")
    dry_run: bool = False


class EnvChange(_Model):
    """What `set_env` changed on one container (nothing is sent when `changed` is False)."""

    workload: Workload
    container: str
    set: dict[str, str] = Field(default_factory=dict, description="Variables given a new value.")
    removed: list[str] = Field(default_factory=list, description="Variables deleted.")
    changed: bool
    dry_run: bool = False


class RestartResult(_Model):
    workload: Workload
    restarted_at: str = Field(description="Value written to `kubectl.kubernetes.io/restartedAt` (RFC 3339).")
    changed: bool = Field(description="False when the same restart was already requested this second.")
    dry_run: bool = False


class Replicas(_Model):
    """A Deployment's replica counts (`kubectl get deployment` columns)."""

    workload: Workload
    desired: int
    current: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0


class DeploymentLogs(_Model):
    """The tail of one pod's log, chosen as `kubectl logs deployment/X` chooses it."""

    workload: Workload
    pod: str
    container: str
    lines: list[str]
    pattern: str | None = Field(default=None, description="The case-insensitive regex searched for.")
    matches: list[str] = Field(default_factory=list, description="Lines matching `pattern`.")


class EventInfo(_Model):
    """One core/v1 Event, as `kubectl get events` shows it."""

    type: str | None = None
    reason: str | None = None
    message: str | None = None
    kind: str | None = Field(default=None, description="involvedObject.kind")
    name: str | None = Field(default=None, description="involvedObject.name")
    count: int | None = None
    last_seen: datetime | None = Field(
        default=None, description="lastTimestamp, else eventTime, firstTimestamp or creationTimestamp."
    )
    source: str | None = Field(default=None, description="source.component, else reportingComponent.")


class ContainerUsage(_Model):
    name: str
    cpu_millicores: int
    memory_bytes: int


class PodUsage(_Model):
    """One row of `kubectl top pod`."""

    namespace: str
    name: str
    cpu_millicores: int
    memory_bytes: int
    containers: list[ContainerUsage] = Field(default_factory=list)


class NodeUsage(_Model):
    """One row of `kubectl top node` (percentages of allocatable when the node reports it)."""

    name: str
    cpu_millicores: int
    memory_bytes: int
    cpu_pct: float | None = None
    memory_pct: float | None = None
