"""`rollout_history`, `last_rollout` and `rollout_undo` against the emulator, as kubectl does them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kubectl_world import (
    IMAGE_1,
    NS,
    T0,
    WEB,
    FakeClock,
    deploy,
    deployment,
    revision_annotations,
    running_image,
)
from kubernetes.client import ApiClient, AppsV1Api

import kubeops
from kubeops.models import Workload
from sandbox.k8s import Cluster, ClusterServer
from sandbox.k8s.objects import deployment as manifest
from sandbox.k8s.server import RecordedRequest

IMAGE_2 = "registry.local/web:2.0.0"
IMAGE_3 = "registry.local/web:3.0.0"
REVISION = "deployment.kubernetes.io/revision"
HISTORY = "deployment.kubernetes.io/revision-history"


def patches(server: ClusterServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.method == "PATCH"]


def test_history_lists_owned_revisions_with_cause_images_and_creation_time(
    api: ApiClient, cluster: Cluster, clock: FakeClock
) -> None:
    clock.advance(60)
    deploy(api, cluster, IMAGE_2, **{"kubernetes.io/change-cause": "deploy 2.0.0"})
    # a canary Deployment whose pods also carry app=web: its ReplicaSets match web's selector, but web
    # does not own them, so they are not web's history
    canary = manifest(NS, "web-canary", IMAGE_3)
    canary_labels = {"app": "web", "track": "canary"}
    canary["spec"]["selector"]["matchLabels"] = canary_labels
    canary["spec"]["template"]["metadata"]["labels"] = canary_labels
    cluster.create("Deployment", NS, canary)
    cluster.settle(instant=True)
    assert len(cluster.list("ReplicaSet", NS, label_selector="app=web")) == 3

    history = kubeops.rollout_history(api, WEB)

    assert [r.revision for r in history] == [1, 2]
    first, second = history
    assert first.images == [IMAGE_1] and first.change_cause is None and not first.current
    assert first.created_at == T0 - timedelta(hours=2)
    assert second.images == [IMAGE_2] and second.change_cause == "deploy 2.0.0" and second.current
    assert second.created_at == T0 + timedelta(seconds=60)
    assert second.replicas == 2


def test_last_rollout_tells_a_fresh_deploy_from_an_old_one(
    api: ApiClient, cluster: Cluster, clock: FakeClock
) -> None:
    old = kubeops.last_rollout(api, WEB)
    assert old is not None and old.revision == 1
    assert not old.within(timedelta(minutes=15), now=clock.now())

    deploy(api, cluster, IMAGE_2)
    clock.advance(120)
    fresh = kubeops.last_rollout(api, WEB)
    assert fresh is not None and fresh.revision == 2 and fresh.images == [IMAGE_2]
    assert fresh.within(timedelta(minutes=15), now=clock.now())


def test_undo_restores_the_previous_revision_with_a_json_patch(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    deploy(api, cluster, IMAGE_2)
    server.clear_requests()

    result = kubeops.rollout_undo(api, WEB)

    assert (result.from_revision, result.to_revision, result.skipped) == (2, 1, False)
    assert result.images == [IMAGE_1]
    assert result.message == "deployment.apps/web rolled back"
    # what reached the server: one JSON Patch, a list of two operations, the hash label gone
    (sent,) = patches(server)
    assert sent.content_type == "application/json-patch+json"
    assert sent.path == f"/apis/apps/v1/namespaces/{NS}/deployments/web"
    ops = sent.json()
    assert [(op["op"], op["path"]) for op in ops] == [
        ("replace", "/spec/template"),
        ("replace", "/metadata/annotations"),
    ]
    assert "pod-template-hash" not in ops[0]["value"]["metadata"]["labels"]
    assert ops[0]["value"]["spec"]["containers"][0]["image"] == IMAGE_1
    # the controller reuses revision 1's ReplicaSet as revision 3 and remembers "1"
    cluster.settle(instant=True)
    assert running_image(cluster) == IMAGE_1
    assert deployment(cluster)["metadata"]["annotations"][REVISION] == "3"
    (restored,) = [a for a in revision_annotations(cluster).values() if a.get(REVISION) == "3"]
    assert restored[HISTORY] == "1"
    assert [r.revision for r in kubeops.rollout_history(api, WEB)] == [2, 3]


def test_undo_to_a_given_revision(api: ApiClient, cluster: Cluster) -> None:
    deploy(api, cluster, IMAGE_2)
    deploy(api, cluster, IMAGE_3)

    result = kubeops.rollout_undo(api, WEB, to_revision=1)

    assert (result.from_revision, result.to_revision) == (3, 1)
    cluster.settle(instant=True)
    assert running_image(cluster) == IMAGE_1
    assert [r.revision for r in kubeops.rollout_history(api, WEB)] == [2, 3, 4]


def test_undo_copies_the_revisions_annotations_and_keeps_the_skip_list(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    deploy(api, cluster, IMAGE_2, **{"kubernetes.io/change-cause": "v2"})
    # annotations only on the Deployment (no new revision): kubectl drops them on undo
    AppsV1Api(api).patch_namespaced_deployment(
        "web", NS, {"metadata": {"annotations": {"team": "payments"}}}, _request_timeout=5
    )
    server.clear_requests()

    kubeops.rollout_undo(api, WEB)

    (sent,) = patches(server)
    annotations = sent.json()[1]["value"]
    assert annotations == {REVISION: "2"}  # revision kept from the Deployment; v1 had no change-cause
    cluster.settle(instant=True)
    assert "team" not in deployment(cluster)["metadata"]["annotations"]
    assert "kubernetes.io/change-cause" not in deployment(cluster)["metadata"]["annotations"]


def test_undo_without_history_fails_like_kubectl(api: ApiClient, server: ClusterServer) -> None:
    with pytest.raises(kubeops.NoRolloutHistory, match=r'^no rollout history found for deployment "web"$'):
        kubeops.rollout_undo(api, WEB)
    assert patches(server) == []


@pytest.mark.parametrize("to_revision", [7, -1])
def test_undo_to_a_missing_revision(
    api: ApiClient, cluster: Cluster, server: ClusterServer, to_revision: int
) -> None:
    deploy(api, cluster, IMAGE_2)
    server.clear_requests()
    with pytest.raises(
        kubeops.RevisionNotFound, match=f"^unable to find specified revision {to_revision} in history$"
    ):
        kubeops.rollout_undo(api, WEB, to_revision=to_revision)
    assert patches(server) == []


def test_undo_refuses_a_paused_deployment_after_the_revision_lookup(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    AppsV1Api(api).patch_namespaced_deployment("web", NS, {"spec": {"paused": True}}, _request_timeout=5)
    # with no history the lookup fails first, as in kubectl
    with pytest.raises(kubeops.NoRolloutHistory):
        kubeops.rollout_undo(api, WEB)
    deploy(api, cluster, IMAGE_2)  # paused: recorded in the spec, not rolled out
    AppsV1Api(api).patch_namespaced_deployment("web", NS, {"spec": {"paused": False}}, _request_timeout=5)
    cluster.settle(instant=True)
    AppsV1Api(api).patch_namespaced_deployment("web", NS, {"spec": {"paused": True}}, _request_timeout=5)
    server.clear_requests()

    with pytest.raises(kubeops.DeploymentPaused) as caught:
        kubeops.rollout_undo(api, WEB)

    assert str(caught.value) == (
        "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"
    )
    assert patches(server) == []
    assert running_image(cluster) == IMAGE_2


def test_undo_skips_when_the_template_already_matches(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    deploy(api, cluster, IMAGE_2)
    server.clear_requests()

    result = kubeops.rollout_undo(api, WEB, to_revision=2)

    assert result.skipped
    assert result.message == (
        "deployment.apps/web skipped rollback (current template already matches revision 2)"
    )
    assert patches(server) == []


def test_dry_run_is_sent_to_the_server_and_changes_nothing(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    deploy(api, cluster, IMAGE_2)
    before = deployment(cluster)
    server.clear_requests()

    result = kubeops.rollout_undo(api, WEB, dry_run=True)

    assert result.dry_run and not result.skipped and result.to_revision == 1
    assert result.message == "deployment.apps/web rolled back (server dry run)"
    (sent,) = patches(server)
    assert sent.query.get("dryRun") == ["All"]
    cluster.settle(instant=True)
    assert deployment(cluster) == before
    assert [r.revision for r in kubeops.rollout_history(api, WEB)] == [1, 2]


def test_undo_of_a_missing_deployment(api: ApiClient) -> None:
    with pytest.raises(kubeops.WorkloadNotFound, match="nope"):
        kubeops.rollout_undo(api, Workload(namespace=NS, name="nope"))


def test_undo_adds_the_annotations_when_the_deployment_has_none(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    deploy(api, cluster, IMAGE_2)
    remove = [{"op": "remove", "path": "/metadata/annotations"}]
    AppsV1Api(api).patch_namespaced_deployment("web", NS, remove, _request_timeout=5)
    assert "annotations" not in deployment(cluster)["metadata"]
    server.clear_requests()

    kubeops.rollout_undo(api, WEB)

    (sent,) = patches(server)
    assert sent.json()[1] == {"op": "add", "path": "/metadata/annotations", "value": {}}
    cluster.settle(instant=True)
    assert running_image(cluster) == IMAGE_1
