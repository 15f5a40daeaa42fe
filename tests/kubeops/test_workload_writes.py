"""`scale`, `set_env` and `restart` against the emulator: patch types on the wire, idempotence, refusals."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from kubectl_world import NS, T0, WEB, deployment
from kubernetes.client import ApiClient, AppsV1Api

import kubeops
from kubeops.models import Workload
from sandbox.k8s import Cluster, ClusterServer
from sandbox.k8s.server import RecordedRequest

SMP = "application/strategic-merge-patch+json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def patches(server: ClusterServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.method == "PATCH"]


def env_of(cluster: Cluster) -> list[dict[str, object]]:
    env: list[dict[str, object]] = deployment(cluster)["spec"]["template"]["spec"]["containers"][0].get(
        "env", []
    )
    return env


# --- scale ------------------------------------------------------------------------------------------------


def test_scale_patches_the_scale_subresource_with_a_merge_patch(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    result = kubeops.scale(api, WEB, 3)

    assert (result.previous_replicas, result.replicas, result.changed) == (2, 3, True)
    (sent,) = patches(server)
    assert sent.path == f"/apis/apps/v1/namespaces/{NS}/deployments/web/scale"
    assert sent.content_type == "application/merge-patch+json"
    assert sent.json() == {"spec": {"replicas": 3}}
    cluster.settle(instant=True)
    replicas = kubeops.get_replicas(api, WEB)
    assert (replicas.desired, replicas.ready, replicas.available) == (3, 3, 3)


def test_scale_to_the_current_count_sends_nothing(api: ApiClient, server: ClusterServer) -> None:
    result = kubeops.scale(api, WEB, 2)
    assert (result.previous_replicas, result.replicas, result.changed) == (2, 2, False)
    assert patches(server) == []


def test_scale_dry_run_changes_nothing(api: ApiClient, cluster: Cluster, server: ClusterServer) -> None:
    result = kubeops.scale(api, WEB, 5, dry_run=True)
    assert result.dry_run and result.replicas == 5
    assert patches(server)[0].query.get("dryRun") == ["All"]
    assert deployment(cluster)["spec"]["replicas"] == 2


def test_scale_refuses_bad_input_and_missing_deployments(api: ApiClient) -> None:
    with pytest.raises(ValueError, match="replicas"):
        kubeops.scale(api, WEB, -1)
    with pytest.raises(kubeops.WorkloadNotFound):
        kubeops.scale(api, Workload(namespace=NS, name="nope"), 3)


# --- set env ----------------------------------------------------------------------------------------------


def test_set_env_adds_a_variable_by_strategic_merge_and_is_idempotent(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    change = kubeops.set_env(api, WEB, {"DB_POOL_SIZE": "10"})

    assert change.changed and change.set == {"DB_POOL_SIZE": "10"} and change.container == "web"
    (sent,) = patches(server)
    assert sent.content_type == SMP
    assert sent.json() == {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "web", "env": [{"name": "DB_POOL_SIZE", "value": "10"}]}]}
            }
        }
    }
    # merged by name: the existing variable stays
    assert kubeops.get_deployment_env(api, WEB) == {"LOG_LEVEL": "info", "DB_POOL_SIZE": "10"}

    server.clear_requests()
    again = kubeops.set_env(api, WEB, {"DB_POOL_SIZE": "10", "LOG_LEVEL": "info"})
    assert not again.changed and again.set == {} and again.removed == []
    assert patches(server) == []


def test_set_env_deletes_with_a_patch_directive(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    change = kubeops.set_env(api, WEB, {"LOG_LEVEL": None, "NEVER_SET": None})

    assert change.changed and change.removed == ["LOG_LEVEL"]
    (sent,) = patches(server)
    entries = sent.json()["spec"]["template"]["spec"]["containers"][0]["env"]
    assert entries == [{"name": "LOG_LEVEL", "$patch": "delete"}]
    assert kubeops.get_deployment_env(api, WEB) == {}

    server.clear_requests()
    assert not kubeops.set_env(api, WEB, {"LOG_LEVEL": None}).changed
    assert patches(server) == []


def test_set_env_replaces_a_value_from_a_source(api: ApiClient, cluster: Cluster) -> None:
    from_secret = {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "web", "key": "api-key"}}}
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [from_secret]}]}}}}
    AppsV1Api(api).patch_namespaced_deployment("web", NS, patch, _request_timeout=5)
    assert "API_KEY" not in kubeops.get_deployment_env(api, WEB)  # a source has no literal value

    assert kubeops.set_env(api, WEB, {"API_KEY": "literal"}).changed

    (api_key,) = [e for e in env_of(cluster) if e["name"] == "API_KEY"]
    assert api_key == {"name": "API_KEY", "value": "literal"}


def test_set_env_dry_run_and_unknown_container(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    assert kubeops.set_env(api, WEB, {"FEATURE_X": "off"}, dry_run=True).changed
    assert patches(server)[0].query.get("dryRun") == ["All"]
    assert "FEATURE_X" not in kubeops.get_deployment_env(api, WEB)

    sidecar = Workload(namespace=NS, name="web", container="sidecar")
    with pytest.raises(kubeops.ContainerNotFound, match='container "sidecar" not found'):
        kubeops.set_env(api, sidecar, {"FEATURE_X": "off"})
    with pytest.raises(ValueError, match="empty"):
        kubeops.set_env(api, WEB, {"": "x"})


# --- restart ----------------------------------------------------------------------------------------------


def test_restart_stamps_the_template_and_rolls_new_pods(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    old_pods = {p["metadata"]["name"] for p in cluster.deployment_pods(NS, "web")}

    result = kubeops.restart(api, WEB, now=T0)

    assert result.changed and result.restarted_at == "2026-05-01T12:00:00Z"
    (sent,) = patches(server)
    assert sent.content_type == SMP
    assert sent.json() == {
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2026-05-01T12:00:00Z"}}}}
    }
    cluster.settle(instant=True)
    template = deployment(cluster)["spec"]["template"]
    assert template["metadata"]["annotations"][RESTARTED_AT] == "2026-05-01T12:00:00Z"
    assert deployment(cluster)["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    new_pods = {p["metadata"]["name"] for p in cluster.ready_pods(NS, "web")}
    assert len(new_pods) == 2 and not new_pods & old_pods

    server.clear_requests()
    assert not kubeops.restart(api, WEB, now=T0).changed  # the same second: already requested
    assert patches(server) == []
    later = kubeops.restart(
        api, WEB, now=(T0 + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=2)))
    )
    assert later.changed and later.restarted_at == "2026-05-01T14:01:00+02:00"


def test_restart_refuses_a_paused_deployment_and_a_naive_time(api: ApiClient, server: ClusterServer) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        kubeops.restart(api, WEB, now=datetime(2026, 5, 1, 12, 0))
    AppsV1Api(api).patch_namespaced_deployment("web", NS, {"spec": {"paused": True}}, _request_timeout=5)
    server.clear_requests()
    with pytest.raises(kubeops.DeploymentPaused) as caught:
        kubeops.restart(api, WEB, now=T0)
    assert str(caught.value) == "can't restart paused deployment (run rollout resume first)"
    assert patches(server) == []
