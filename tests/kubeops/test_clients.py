"""`tasks.clients`: clients built from `runbook.settings`, reaching the emulator or a recording stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubectl_world import WEB

import kubeops
from runbook.settings import load_settings
from sandbox.httpserver import HttpServer, Request, Response
from sandbox.k8s import ClusterServer, kubeconfig
from tasks.clients import (
    DEFAULT_REQUEST_TIMEOUT_S,
    KubernetesApiClient,
    close_clients,
    http_client,
    kubernetes_api,
    request_timeout_s,
)


@pytest.fixture(autouse=True)
def _forget_clients() -> Iterator[None]:
    yield
    close_clients()


def test_api_url_settings_reach_the_emulator_with_their_timeout(server: ClusterServer) -> None:
    settings = load_settings(kubernetes={"api_url": server.url, "request_timeout_s": 2.5})

    api = kubernetes_api(settings)

    assert isinstance(api, KubernetesApiClient) and request_timeout_s(api) == 2.5
    assert kubeops.get_replicas(api, WEB).desired == 2
    assert kubernetes_api(settings) is api  # one client per settings object
    assert kubernetes_api(load_settings(kubernetes={"api_url": server.url})) is not api


def test_kubeconfig_settings(server: ClusterServer, tmp_path: Path) -> None:
    path = kubeconfig(server.url, tmp_path / "kubeconfig")
    api = kubernetes_api(load_settings(kubernetes={"kubeconfig": str(path), "context": "sandbox"}))
    assert api.configuration.host == server.url
    assert kubeops.get_replicas(api, WEB).ready == 2


def test_a_token_is_sent_as_a_bearer_header() -> None:
    seen: list[str] = []

    def deployment(request: Request) -> Response:
        seen.append(request.headers.get("authorization", ""))
        return Response.json({"kind": "Status", "status": "Failure", "code": 404, "message": "not here"}, 404)

    with HttpServer(name="apiserver") as stand_in:
        stand_in.route("GET", "/apis/apps/v1/namespaces/{ns}/deployments/{name}", deployment)
        settings = load_settings(kubernetes={"api_url": stand_in.url, "token": "s3cret-token"})
        with pytest.raises(kubeops.WorkloadNotFound):
            kubeops.get_replicas(kubernetes_api(settings), WEB)
    assert seen == ["Bearer s3cret-token"]
    assert "s3cret-token" not in repr(settings)


def test_a_plain_api_client_still_gets_a_timeout() -> None:
    from kubernetes.client import ApiClient

    with ApiClient() as plain:
        assert request_timeout_s(plain) == DEFAULT_REQUEST_TIMEOUT_S


def test_http_client_has_every_timeout_set() -> None:
    settings = load_settings(service={"http_timeout_s": 2.0})
    with http_client(settings, base_url="http://127.0.0.1:9") as client:
        assert client.timeout == httpx.Timeout(2.0, connect=1.0)
        assert str(client.base_url) == "http://127.0.0.1:9"
    with http_client(settings, timeout_s=0.5) as quick:
        assert quick.timeout.read == 0.5
    with pytest.raises(ValueError, match="timeout_s"):
        http_client(settings, timeout_s=0)
