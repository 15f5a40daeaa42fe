"""Reads and lists through the official client: complete objects, selectors, Status errors."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .support import IMAGE, NAME, NS, T0


def test_read_deployment_is_complete_and_realistic(apps: client.AppsV1Api) -> None:
    dep = apps.read_namespaced_deployment(NAME, NS)
    assert dep.metadata.uid and len(dep.metadata.uid) == 36
    assert dep.metadata.resource_version.isdigit()
    assert dep.metadata.generation == 1
    assert dep.metadata.creation_timestamp.isoformat() == "2026-07-01T10:00:00+00:00"
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert dep.spec.template.spec.containers[0].image == IMAGE
    assert dep.spec.strategy.rolling_update.max_surge == "25%"
    assert dep.status.observed_generation == 1
    assert (dep.status.replicas, dep.status.updated_replicas, dep.status.available_replicas) == (2, 2, 2)
    reasons = {c.type: c.reason for c in dep.status.conditions}
    assert reasons == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    assert dep.status.conditions[0].last_update_time < T0


def test_read_missing_deployment_is_a_404_status(apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("nope", NS)
    assert err.value.status == 404
    assert err.value.headers["Content-Type"] == "application/json"
    assert '"reason":"NotFound"' in err.value.body
    assert 'deployments.apps \\"nope\\" not found' in err.value.body


def test_list_deployments_by_field_and_label_selector(cluster, apps: client.AppsV1Api) -> None:
    cluster.seed_deployment(NS, "worker", "registry.local/emotionscare/worker:3.0.0", replicas=1)
    all_names = [d.metadata.name for d in apps.list_namespaced_deployment(NS).items]
    assert all_names == ["web", "worker"]
    only_web = apps.list_namespaced_deployment(NS, field_selector=f"metadata.name={NAME}")
    assert [d.metadata.name for d in only_web.items] == ["web"]
    assert only_web.metadata.resource_version.isdigit()
    not_web = apps.list_namespaced_deployment(NS, field_selector="metadata.name!=web")
    assert [d.metadata.name for d in not_web.items] == ["worker"]
    by_label = apps.list_namespaced_deployment(NS, label_selector="app=worker")
    assert [d.metadata.name for d in by_label.items] == ["worker"]
    everywhere = apps.list_deployment_for_all_namespaces()
    assert {d.metadata.namespace for d in everywhere.items} == {NS}
    assert apps.list_namespaced_deployment("staging").items == []


def test_list_paginates_with_limit_and_continue(cluster, apps: client.AppsV1Api) -> None:
    for i in range(3):
        cluster.seed_deployment(NS, f"svc-{i}", IMAGE, replicas=1)
    first = apps.list_namespaced_deployment(NS, limit=2)
    assert len(first.items) == 2 and first.metadata.remaining_item_count == 2
    second = apps.list_namespaced_deployment(NS, limit=2, _continue=first.metadata._continue)
    assert second.metadata._continue is None
    names = [d.metadata.name for d in first.items + second.items]
    assert names == ["svc-0", "svc-1", "svc-2", "web"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"web-a", "web-b"}),
        ("app==web,track=stable", {"web-a"}),
        ("track!=stable", {"web-b", "api"}),
        ("track in (canary,stable)", {"web-a", "web-b"}),
        ("app notin (web)", {"api"}),
        ("track", {"web-a", "web-b"}),
        ("!track", {"api"}),
        ("app in (web),track notin (canary)", {"web-a"}),
    ],
)
def test_replica_sets_by_label_selector(
    cluster, apps: client.AppsV1Api, selector: str, expected: set[str]
) -> None:
    for name, labels in (
        ("web-a", {"app": "web", "track": "stable"}),
        ("web-b", {"app": "web", "track": "canary"}),
        ("api", {"app": "api"}),
    ):
        dep = {
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": labels["app"], "name": name}},
                "template": {
                    "metadata": {"labels": {**labels, "name": name}},
                    "spec": {"containers": [{"name": "app", "image": IMAGE}]},
                },
            },
        }
        apps.create_namespaced_deployment("staging", dep)
    cluster.settle()
    found = apps.list_namespaced_replica_set("staging", label_selector=selector).items
    owners = {rs.metadata.owner_references[0].name for rs in found}
    assert owners == expected
    for rs in found:
        assert rs.metadata.owner_references[0].controller is True
        assert rs.metadata.labels["pod-template-hash"] == rs.metadata.name.rsplit("-", 1)[1]


def test_read_replica_set_and_its_pods(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    dep = apps.read_namespaced_deployment(NAME, NS)
    (rs,) = apps.list_namespaced_replica_set(NS, label_selector="app=web").items
    same = apps.read_namespaced_replica_set(rs.metadata.name, NS)
    assert same.metadata.uid == rs.metadata.uid
    assert same.metadata.owner_references[0].uid == dep.metadata.uid
    assert same.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert same.status.ready_replicas == 2
    pods = core.list_namespaced_pod(
        NS, label_selector=f"pod-template-hash={rs.metadata.labels['pod-template-hash']}"
    )
    assert len(pods.items) == 2
    for pod in pods.items:
        assert pod.metadata.owner_references[0].uid == rs.metadata.uid
        assert pod.status.phase == "Running"
        assert pod.spec.node_name.startswith("sandbox-node-")
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
        (cs,) = pod.status.container_statuses
        assert cs.ready and cs.restart_count == 0 and cs.state.running.started_at is not None
        assert core.read_namespaced_pod(pod.metadata.name, NS).metadata.uid == pod.metadata.uid
    running = core.list_namespaced_pod(NS, field_selector="status.phase=Running")
    assert len(running.items) == 2


def test_nodes_and_version(api: client.ApiClient, core: client.CoreV1Api) -> None:
    nodes = core.list_node().items
    assert [n.metadata.name for n in nodes] == ["sandbox-node-1", "sandbox-node-2"]
    node = core.read_node("sandbox-node-1")
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert node.status.allocatable["cpu"] == "4"
    assert client.VersionApi(api).get_code().git_version == "v1.32.4"
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert groups == {"apps", "metrics.k8s.io"}


def test_bad_selectors_are_400_with_a_reason(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        apps.list_namespaced_replica_set(NS, label_selector="app in (web")
    assert err.value.status == 400 and "unbalanced" in err.value.body
    with pytest.raises(ApiException) as err:
        core.list_namespaced_event(NS, field_selector="color=blue")
    assert err.value.status == 400 and "field label not supported" in err.value.body


def test_unknown_path_and_method_are_404_and_405(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        client.BatchV1Api(api).list_namespaced_job(NS)
    assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        client.AppsV1Api(api).delete_namespaced_replica_set("whatever", NS)
    assert err.value.status == 405
    assert '"reason":"MethodNotAllowed"' in err.value.body
