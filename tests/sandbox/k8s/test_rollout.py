"""Rollouts end to end through the official client, with kubectl's client-side algorithms from
`kubeops` (rollout undo/status/history as kubectl runs them) and the emulated deployment controller
driven one tick at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kubernetes import client, watch

from kubeops import (
    DeploymentPaused,
    NoRolloutHistory,
    last_rollout,
    rollout_history,
    rollout_status,
    rollout_undo,
)
from kubeops.models import RolloutState, Workload
from sandbox.k8s import Cluster, ClusterServer
from sandbox.k8s.clock import ManualClock

from .support import IMAGE, NAME, NS, T0

WEB = Workload(namespace=NS, name=NAME)
V2 = "registry.local/emotionscare/web:1.5.0"


def _set_image(apps: client.AppsV1Api, image: str, name: str = NAME) -> None:
    apps.patch_namespaced_deployment(
        name, NS, {"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}}
    )


def _revisions(apps: client.AppsV1Api, name: str = NAME) -> dict[str, dict[str, str]]:
    """ReplicaSet name -> its revision annotations."""
    out = {}
    for rs in apps.list_namespaced_replica_set(NS, label_selector=f"app={name}").items:
        ann = rs.metadata.annotations or {}
        out[rs.metadata.name] = {k.rsplit("/", 1)[1]: v for k, v in ann.items() if "revision" in k}
    return out


def _roll_to_completion(cluster: Cluster, api: client.ApiClient, workload: Workload = WEB) -> list[str]:
    """Tick the controller until `rollout status` says done; the messages seen on the way."""
    seen = [rollout_status(api, workload).message]
    for _ in range(30):
        cluster.tick()
        status = rollout_status(api, workload)
        if status.message != seen[-1]:
            seen.append(status.message)
        if status.state is not RolloutState.WAITING:
            return seen
    pytest.fail(f"rollout did not finish in 30 ticks: {seen}")


def test_rollout_status_passes_through_the_waiting_states(
    cluster: Cluster, api: client.ApiClient, apps: client.AppsV1Api
) -> None:
    _set_image(apps, V2)
    seen = _roll_to_completion(cluster, api)
    waiting = 'Waiting for deployment "web" rollout to finish: '
    assert seen == [
        "Waiting for deployment spec update to be observed...",
        f"{waiting}0 out of 2 new replicas have been updated...",
        f"{waiting}1 out of 2 new replicas have been updated...",
        f"{waiting}1 old replicas are pending termination...",
        'deployment "web" successfully rolled out',
    ]
    dep = apps.read_namespaced_deployment(NAME, NS)
    progressing = next(c for c in dep.status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("True", "NewReplicaSetAvailable")
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "2"


def test_roll_out_and_back_revisions_1_2_become_3_with_history(
    cluster: Cluster, clock: ManualClock, server: ClusterServer, api: client.ApiClient, apps: client.AppsV1Api
) -> None:
    first_rs = next(iter(_revisions(apps)))
    clock.advance(minutes=5)
    _set_image(apps, V2)
    _roll_to_completion(cluster, api)
    revisions = _revisions(apps)
    assert sorted(r["revision"] for r in revisions.values()) == ["1", "2"]
    current = last_rollout(api, WEB)
    assert current is not None and current.revision == 2 and current.images == [V2]
    assert current.created_at == clock()

    server.clear_requests()
    undo = rollout_undo(api, WEB)
    assert not undo.skipped and undo.to_revision == 1 and undo.replica_set == first_rs
    (patch,) = [r for r in server.requests if r.method == "PATCH"]
    assert patch.content_type == "application/json-patch+json"
    ops = patch.json()
    assert [(op["op"], op["path"]) for op in ops] == [
        ("replace", "/spec/template"),
        ("replace", "/metadata/annotations"),
    ]
    assert "pod-template-hash" not in ops[0]["value"]["metadata"]["labels"]
    assert ops[0]["value"]["spec"]["containers"][0]["image"] == IMAGE

    seen = _roll_to_completion(cluster, api)
    assert seen[-1] == 'deployment "web" successfully rolled out'
    revisions = _revisions(apps)
    assert len(revisions) == 2, "the controller reuses the old ReplicaSet, it makes no new one"
    assert revisions[first_rs] == {"revision": "3", "revision-history": "1"}
    assert (
        apps.read_namespaced_deployment(NAME, NS).metadata.annotations["deployment.kubernetes.io/revision"]
        == "3"
    )
    assert [r.revision for r in rollout_history(api, WEB)] == [2, 3]
    # the restored revision's ReplicaSet is the one created two hours ago
    restored = last_rollout(api, WEB)
    assert restored is not None and restored.created_at == T0 - timedelta(hours=2)


def test_undo_errors_are_kubectls(cluster: Cluster, api: client.ApiClient, apps: client.AppsV1Api) -> None:
    with pytest.raises(NoRolloutHistory, match='no rollout history found for deployment "web"'):
        rollout_undo(api, WEB)
    _set_image(apps, V2)
    cluster.settle()
    # the revision asked for is the running one: nothing to do
    skipped = rollout_undo(api, WEB, to_revision=2)
    assert skipped.skipped
    assert (
        skipped.message
        == "deployment.apps/web skipped rollback (current template already matches revision 2)"
    )
    # the template is already back to revision 1's before the controller renumbered anything
    _set_image(apps, IMAGE)
    skipped = rollout_undo(api, WEB)
    assert skipped.skipped and skipped.to_revision == 1
    apps.patch_namespaced_deployment(NAME, NS, {"spec": {"paused": True}})
    with pytest.raises(DeploymentPaused, match="you cannot rollback a paused deployment; resume it first"):
        rollout_undo(api, WEB)


def test_paused_deployment_keeps_its_pods_until_resumed(
    cluster: Cluster, api: client.ApiClient, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    pods = sorted(p.metadata.name for p in core.list_namespaced_pod(NS).items)
    apps.patch_namespaced_deployment(NAME, NS, {"spec": {"paused": True}})
    _set_image(apps, V2)
    cluster.settle()
    assert sorted(p.metadata.name for p in core.list_namespaced_pod(NS).items) == pods
    assert len(_revisions(apps)) == 1
    dep = apps.read_namespaced_deployment(NAME, NS)
    progressing = next(c for c in dep.status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("Unknown", "DeploymentPaused")
    assert dep.status.observed_generation == dep.metadata.generation
    apps.patch_namespaced_deployment(NAME, NS, {"spec": {"paused": False}})
    assert _roll_to_completion(cluster, api)[-1] == 'deployment "web" successfully rolled out'
    images = {p.spec.containers[0].image for p in core.list_namespaced_pod(NS).items}
    assert images == {V2}


def test_bad_image_exceeds_the_progress_deadline(
    cluster: Cluster, clock: ManualClock, api: client.ApiClient, apps: client.AppsV1Api
) -> None:
    apps.patch_namespaced_deployment(NAME, NS, {"spec": {"progressDeadlineSeconds": 120}})
    cluster.settle()
    _set_image(apps, "registry.local/emotionscare/web:1.5.0-bad")
    cluster.settle()
    status = rollout_status(api, WEB)
    assert status.state is RolloutState.WAITING
    assert status.message.endswith("1 out of 2 new replicas have been updated...")
    assert (status.updated, status.available) == (1, 2)  # the old pods still serve
    clock.advance(seconds=121)
    cluster.tick()
    status = rollout_status(api, WEB)
    assert status.state is RolloutState.FAILED
    assert status.message == 'deployment "web" exceeded its progress deadline'
    dep = apps.read_namespaced_deployment(NAME, NS)
    progressing = next(c for c in dep.status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("False", "ProgressDeadlineExceeded")
    assert progressing.message.endswith("has timed out progressing.")


def test_revision_history_limit_prunes_old_replica_sets(cluster: Cluster, apps: client.AppsV1Api) -> None:
    apps.patch_namespaced_deployment(NAME, NS, {"spec": {"revisionHistoryLimit": 2}})
    for minor in range(5, 9):
        _set_image(apps, f"registry.local/emotionscare/web:1.{minor}.0")
        cluster.settle()
    revisions = sorted(int(r["revision"]) for r in _revisions(apps).values())
    assert revisions == [3, 4, 5]


def test_watch_streams_the_deployment_changes(cluster: Cluster, apps: client.AppsV1Api) -> None:
    rv = apps.list_namespaced_deployment(NS, field_selector=f"metadata.name={NAME}").metadata.resource_version
    _set_image(apps, V2)
    cluster.tick()
    events = []
    w = watch.Watch()
    for event in w.stream(
        apps.list_namespaced_deployment,
        NS,
        field_selector=f"metadata.name={NAME}",
        resource_version=rv,
        timeout_seconds=5,
    ):
        events.append(event)
        if event["object"].status.observed_generation == 2:
            w.stop()
    assert events[0]["type"] == "MODIFIED"
    assert events[0]["object"].metadata.generation == 2
    assert events[-1]["object"].status.observed_generation == 2


def test_recreate_strategy_stops_old_pods_before_starting_new_ones(
    cluster: Cluster, api: client.ApiClient, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.patch_namespaced_deployment(
        NAME,
        NS,
        {"spec": {"strategy": {"type": "Recreate", "rollingUpdate": None}}},
        _content_type="application/merge-patch+json",
    )
    cluster.settle()
    _set_image(apps, V2)
    both_at_once = False
    for _ in range(20):
        cluster.tick()
        images = {p.spec.containers[0].image for p in core.list_namespaced_pod(NS).items}
        both_at_once |= images == {IMAGE, V2}
        if rollout_status(api, WEB).state is RolloutState.DONE:
            break
    assert not both_at_once
    assert {p.spec.containers[0].image for p in core.list_namespaced_pod(NS).items} == {V2}
    assert sorted(r["revision"] for r in _revisions(apps).values()) == ["1", "2"]
