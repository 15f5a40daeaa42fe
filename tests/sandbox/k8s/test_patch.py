"""Writes through the official client: the three PATCH types (and the Content-Type each one sends),
create, replace with resourceVersion conflicts, validation, dry runs, generation and status rules."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox.k8s import ClusterServer

from .support import IMAGE, NAME, NS


def _last_patch(server: ClusterServer) -> tuple[str, object]:
    (req,) = [r for r in server.requests if r.method == "PATCH"][-1:]
    return req.content_type, req.json()


def _env(dep: client.V1Deployment) -> dict[str, str]:
    return {e.name: e.value for e in dep.spec.template.spec.containers[0].env or []}


def test_dict_body_is_a_strategic_merge_patch_merging_env_by_name(
    server: ClusterServer, apps: client.AppsV1Api
) -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": NAME,
                            "env": [{"name": "FEATURE_MUSIC_GENERATION_ENABLED", "value": "false"}],
                        }
                    ]
                }
            }
        }
    }
    dep = apps.patch_namespaced_deployment(NAME, NS, patch)
    content_type, body = _last_patch(server)
    assert content_type == "application/strategic-merge-patch+json"
    assert body == patch
    # merged by the `name` merge key: the existing variable stays, the image too
    assert _env(dep) == {"DB_POOL_SIZE": "20", "FEATURE_MUSIC_GENERATION_ENABLED": "false"}
    assert dep.spec.template.spec.containers[0].image == IMAGE
    assert dep.metadata.generation == 2


def test_strategic_merge_patch_delete_directive_and_port_merge_key(apps: client.AppsV1Api) -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": NAME,
                            "env": [{"name": "DB_POOL_SIZE", "$patch": "delete"}],
                            "ports": [{"containerPort": 9090, "name": "metrics"}],
                        }
                    ]
                }
            }
        }
    }
    dep = apps.patch_namespaced_deployment(NAME, NS, patch)
    container = dep.spec.template.spec.containers[0]
    assert _env(dep) == {}
    assert [(p.container_port, p.name) for p in container.ports] == [(8080, "http"), (9090, "metrics")]


def test_list_body_is_a_json_patch(server: ClusterServer, apps: client.AppsV1Api) -> None:
    ops = [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/image",
            "value": "registry.local/web:2.0.0",
        },
        {"op": "add", "path": "/metadata/annotations/kubernetes.io~1change-cause", "value": "release 2.0.0"},
    ]
    dep = apps.patch_namespaced_deployment(NAME, NS, ops)
    content_type, body = _last_patch(server)
    assert content_type == "application/json-patch+json"
    assert body == ops
    assert dep.spec.template.spec.containers[0].image == "registry.local/web:2.0.0"
    assert dep.metadata.annotations["kubernetes.io/change-cause"] == "release 2.0.0"


def test_json_patch_that_does_not_apply_is_422(apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(NAME, NS, [{"op": "test", "path": "/spec/replicas", "value": 7}])
    assert err.value.status == 422


def test_merge_patch_replaces_lists_and_null_deletes(server: ClusterServer, apps: client.AppsV1Api) -> None:
    patch = {"metadata": {"labels": {"tier": "frontend", "app": None}}, "spec": {"replicas": 4}}
    dep = apps.patch_namespaced_deployment(NAME, NS, patch, _content_type="application/merge-patch+json")
    content_type, body = _last_patch(server)
    assert content_type == "application/merge-patch+json"
    assert body == patch
    assert dep.metadata.labels == {"tier": "frontend"}
    assert dep.spec.replicas == 4
    # in a merge patch a list replaces the whole list: the env is exactly what was sent
    containers = [{"name": NAME, "image": IMAGE, "env": [{"name": "ONLY", "value": "1"}]}]
    dep = apps.patch_namespaced_deployment(
        NAME,
        NS,
        {"spec": {"template": {"spec": {"containers": containers}}}},
        _content_type="application/merge-patch+json",
    )
    assert _env(dep) == {"ONLY": "1"}
    assert dep.spec.template.spec.containers[0].ports is None


def test_apply_patch_and_unknown_types_are_415(api: client.ApiClient, server: ClusterServer) -> None:
    # The generated method validates its body as dict/list/model; a server-side apply body is a string,
    # so go one level down the same client: serialize, send, deserialize.
    body = json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 3}})
    for content_type in ("application/apply-patch+yaml", "text/plain"):
        request = api.param_serialize(
            method="PATCH",
            resource_path="/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
            path_params={"namespace": NS, "name": NAME},
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
        )
        response = api.call_api(*request, _request_timeout=5)
        response.read()
        with pytest.raises(ApiException) as err:
            api.response_deserialize(response, {"200": "V1Deployment"})
        assert server.requests[-1].content_type == content_type
        assert err.value.status == 415
        assert err.value.headers["Content-Type"] == "application/json"
        assert '"reason":"UnsupportedMediaType"' in err.value.body


def test_invalid_patch_is_422_naming_the_field(apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(NAME, NS, {"spec": {"replicas": -1}})
    assert err.value.status == 422
    status = json.loads(err.value.body)
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.replicas"
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(NAME, NS, {"spec": {"selector": {"matchLabels": {"app": "other"}}}})
    assert err.value.status == 422 and "does not match template" in err.value.body


def test_generation_bumps_only_on_spec_change_and_status_is_ignored(apps: client.AppsV1Api) -> None:
    before = apps.read_namespaced_deployment(NAME, NS)
    dep = apps.patch_namespaced_deployment(NAME, NS, {"metadata": {"annotations": {"team": "care"}}})
    assert dep.metadata.generation == before.metadata.generation
    assert int(dep.metadata.resource_version) > int(before.metadata.resource_version)
    dep = apps.patch_namespaced_deployment(NAME, NS, {"status": {"replicas": 99}})
    assert dep.status.replicas == 2
    dep = apps.patch_namespaced_deployment(NAME, NS, {"spec": {"paused": True}})
    assert dep.metadata.generation == before.metadata.generation + 1
    assert dep.status.observed_generation == before.metadata.generation


def test_dry_run_persists_nothing(apps: client.AppsV1Api, server: ClusterServer) -> None:
    before = apps.read_namespaced_deployment(NAME, NS)
    dry = apps.patch_namespaced_deployment(NAME, NS, {"spec": {"replicas": 5}}, dry_run="All")
    assert dry.spec.replicas == 5
    assert server.requests[-1].query["dryRun"] == ["All"]
    after = apps.read_namespaced_deployment(NAME, NS)
    assert after.spec.replicas == 2
    assert after.metadata.resource_version == before.metadata.resource_version
    body = client.ApiClient().sanitize_for_serialization(before)
    body["metadata"]["name"] = "web-copy"
    created = apps.create_namespaced_deployment(NS, body | {"metadata": {"name": "web-copy"}}, dry_run="All")
    assert created.metadata.name == "web-copy"
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS).items] == [NAME]


def test_create_then_already_exists(apps: client.AppsV1Api) -> None:
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="api"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "api"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "api"}),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="api", image="registry.local/api:1")]
                ),
            ),
        ),
    )
    created = apps.create_namespaced_deployment(NS, dep)
    assert created.metadata.generation == 1 and created.metadata.uid
    assert created.spec.replicas == 1  # the API's default
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.revision_history_limit == 10
    assert created.spec.progress_deadline_seconds == 600
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment(NS, dep)
    assert err.value.status == 409
    assert '"reason":"AlreadyExists"' in err.value.body


def test_replace_with_stale_resource_version_is_409(apps: client.AppsV1Api) -> None:
    dep = apps.read_namespaced_deployment(NAME, NS)
    dep.spec.replicas = 3
    replaced = apps.replace_namespaced_deployment(NAME, NS, dep)
    assert replaced.spec.replicas == 3
    assert replaced.metadata.generation == dep.metadata.generation + 1
    dep.spec.replicas = 4  # still carries the old resourceVersion
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment(NAME, NS, dep)
    assert err.value.status == 409
    status = json.loads(err.value.body)
    assert status["reason"] == "Conflict"
    assert "the object has been modified" in status["message"]
    assert apps.read_namespaced_deployment(NAME, NS).spec.replicas == 3
