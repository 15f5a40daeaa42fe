"""kubectl's small rules, checked one by one: selector strings, template equality, ByLogging, timestamps.

These are the pieces the emulator tests can only reach indirectly; here each rule gets its own table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import urllib3.exceptions
from kubernetes.client import ApiClient, V1LabelSelector, V1Pod, V1PodTemplateSpec
from kubernetes.client.exceptions import ApiException

import kubeops
from kubeops.logs import choose_log_pod
from kubeops.models import Revision
from kubeops.objects import REVISION_ANNOTATION, label_selector_string
from kubeops.replicasets import equal_ignore_hash, revision_of
from kubeops.workload import _rfc3339
from tasks.retry import is_transient

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ts(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    name: str,
    *,
    node: str | None = "node-1",
    phase: str = "Running",
    ready_at: int | None = 0,
    restarts: int = 0,
    created: int = 0,
    sidecar_restarts: int | None = None,
) -> V1Pod:
    conditions = [{"type": "Ready", "status": "True" if ready_at is not None else "False"}]
    if ready_at is not None:
        conditions[0]["lastTransitionTime"] = ts(ready_at)
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "web:1"}]}
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": [
            {
                "name": "app",
                "image": "web:1",
                "imageID": "x",
                "ready": ready_at is not None,
                "restartCount": restarts,
            }
        ],
    }
    if node:
        spec["nodeName"] = node
    if sidecar_restarts is not None:
        spec["initContainers"] = [{"name": "proxy", "image": "proxy:1", "restartPolicy": "Always"}]
        status["initContainerStatuses"] = [
            {
                "name": "proxy",
                "image": "proxy:1",
                "imageID": "x",
                "ready": True,
                "restartCount": sidecar_restarts,
            }
        ]
    built = V1Pod.from_dict(
        {"metadata": {"name": name, "creationTimestamp": ts(created)}, "spec": spec, "status": status}
    )
    assert built is not None
    return built


@pytest.mark.parametrize(
    ("pods", "first"),
    [
        # 1. assigned to a node before unassigned
        ([pod("unassigned", node=None), pod("assigned")], "assigned"),
        # 2. Running < Unknown < Pending
        (
            [pod("pending", phase="Pending", ready_at=None), pod("unknown", phase="Unknown", ready_at=None)],
            "unknown",
        ),
        ([pod("unknown", phase="Unknown"), pod("running")], "running"),
        # 3. ready before not ready
        ([pod("not-ready", ready_at=None), pod("ready")], "ready"),
        # 4. ready for longer first
        ([pod("ready-late", ready_at=50), pod("ready-early", ready_at=10)], "ready-early"),
        # 5. more restarts first (regular containers, then sidecars)
        ([pod("calm", restarts=0), pod("crashy", restarts=4)], "crashy"),
        ([pod("calm", sidecar_restarts=0), pod("sidecar-crashy", sidecar_restarts=2)], "sidecar-crashy"),
        # 6. older first
        ([pod("young", created=100), pod("old", created=5)], "old"),
    ],
)
def test_log_pod_is_chosen_in_by_logging_order(pods: list[V1Pod], first: str) -> None:
    chosen = choose_log_pod(pods)
    assert chosen is not None and chosen.metadata is not None
    assert chosen.metadata.name == first
    reversed_choice = choose_log_pod(list(reversed(pods)))
    assert reversed_choice is not None and reversed_choice.metadata is not None
    assert reversed_choice.metadata.name == first


def test_no_pods_means_no_choice() -> None:
    assert choose_log_pod([]) is None


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"matchLabels": {"app": "web", "tier": "front"}}, "app=web,tier=front"),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "canary"]},
                    {"key": "track", "operator": "NotIn", "values": ["old"]},
                    {"key": "owner", "operator": "Exists"},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ],
            },
            "app=web,env in (canary,prod),track notin (old),owner,!legacy",
        ),
        ({}, ""),
    ],
)
def test_label_selector_string(selector: dict[str, Any], expected: str) -> None:
    assert label_selector_string(V1LabelSelector.from_dict(selector)) == expected


def test_missing_selector_is_refused() -> None:
    with pytest.raises(ValueError, match="selector"):
        label_selector_string(None)


def template(labels: dict[str, str], image: str = "web:1", **container: Any) -> V1PodTemplateSpec:
    built = V1PodTemplateSpec.from_dict(
        {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": image, **container}]},
        }
    )
    assert built is not None
    return built


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (template({"app": "web", "pod-template-hash": "abc"}), template({"app": "web"}), True),
        (template({"pod-template-hash": "abc"}), template({}), True),  # empty labels equal absent ones
        (template({"app": "web"}), template({"app": "web"}, image="web:2"), False),
        (
            template({"app": "web"}, resources={"limits": {"cpu": "1000m", "memory": "1Gi"}}),
            template({"app": "web"}, resources={"limits": {"cpu": "1", "memory": "1073741824"}}),
            True,
        ),
        (template({"app": "web"}, env=[]), template({"app": "web"}), True),
        (template({"app": "web"}, env=[{"name": "A", "value": "1"}]), template({"app": "web"}), False),
    ],
)
def test_templates_compare_ignoring_the_hash_label(
    a: V1PodTemplateSpec, b: V1PodTemplateSpec, equal: bool
) -> None:
    with ApiClient() as api:
        assert equal_ignore_hash(api, a, b) is equal


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC), "2026-03-04T05:06:07Z"),
        (datetime(2026, 3, 4, 12, 6, 7, tzinfo=timezone(timedelta(hours=7))), "2026-03-04T12:06:07+07:00"),
    ],
)
def test_restarted_at_is_rfc3339_seconds(moment: datetime, expected: str) -> None:
    assert _rfc3339(moment) == expected


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (kubeops.KubernetesUnavailable("down"), True),
        (kubeops.WorkloadNotFound("gone"), False),
        (kubeops.Conflict("raced"), False),
        (kubeops.DeploymentPaused("paused"), False),
        (ApiException(status=503, reason="Service Unavailable"), True),
        (ApiException(status=429, reason="Too Many Requests"), True),
        (ApiException(status=422, reason="Unprocessable Entity"), False),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), True),  # type: ignore[arg-type]
        (ConnectionRefusedError(), True),
        (ValueError("bad input"), False),
    ],
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


@pytest.mark.parametrize(
    ("raw", "revision"),
    [(None, 0), ("3", 3), ("+4", 4), ("x", None), ("3.0", None), (" 3", None)],
)
def test_revision_annotation_parsing(raw: str | None, revision: int | None) -> None:
    from kubernetes.client import V1ReplicaSet

    annotations = {} if raw is None else {REVISION_ANNOTATION: raw}
    rs = V1ReplicaSet.from_dict(
        {
            "metadata": {"name": "web-1", "annotations": annotations},
            "spec": {"selector": {"matchLabels": {"a": "b"}}},
        }
    )
    assert rs is not None
    assert revision_of(rs) == revision


def test_revision_within_a_window() -> None:
    rev = Revision(revision=3, replica_set="web-3", created_at=T0)
    assert rev.within(timedelta(minutes=15), now=T0 + timedelta(minutes=2))
    assert not rev.within(timedelta(minutes=15), now=T0 + timedelta(hours=2))
    assert not Revision(revision=1, replica_set="web-1").within(timedelta(minutes=15), now=T0)
