"""The client's failures become our typed errors, over a real loopback socket.

A sandbox `HttpServer` answers the Deployment GET with Kubernetes `Status` objects, refuses the
connection, or never answers; the official client talks to it exactly as it would to an API server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import kubeops
from kubeops.models import Workload
from runbook.settings import load_settings
from sandbox.httpserver import HttpError, HttpServer, Request, Response
from tasks.clients import KubernetesApiClient, kubernetes_configuration
from tasks.retry import is_transient

WEB = Workload(namespace="prod", name="web")
PATH = "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def status(code: int, reason: str, message: str) -> dict[str, object]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@pytest.fixture
def server() -> Iterator[HttpServer]:
    srv = HttpServer(name="apiserver")
    answers: list[tuple[int, dict[str, object]]] = []

    def deployment(request: Request) -> Response:
        code, body = answers.pop(0)
        raise HttpError(code, body)

    srv.route("GET", PATH, deployment)
    srv.answers = answers  # type: ignore[attr-defined]
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def api(server: HttpServer) -> Iterator[KubernetesApiClient]:
    settings = load_settings(kubernetes={"api_url": server.url, "request_timeout_s": 0.3})
    client = KubernetesApiClient(kubernetes_configuration(settings), request_timeout_s=0.3)
    with client:
        yield client


@pytest.mark.parametrize(
    ("code", "reason", "error", "transient"),
    [
        (404, "NotFound", kubeops.WorkloadNotFound, False),
        (409, "Conflict", kubeops.Conflict, False),
        (422, "Invalid", kubeops.KubernetesRequestFailed, False),
        (403, "Forbidden", kubeops.KubernetesRequestFailed, False),
        (503, "ServiceUnavailable", kubeops.KubernetesUnavailable, True),
        (500, "InternalError", kubeops.KubernetesUnavailable, True),
        (429, "TooManyRequests", kubeops.KubernetesUnavailable, True),
    ],
)
def test_status_codes_map_to_typed_errors(
    server: HttpServer,
    api: KubernetesApiClient,
    code: int,
    reason: str,
    error: type[kubeops.KubernetesError],
    transient: bool,
) -> None:
    message = f'deployments.apps "web" says {reason}'
    server.answers.append((code, status(code, reason, message)))  # type: ignore[attr-defined]
    with pytest.raises(error) as caught:
        kubeops.get_replicas(api, WEB)
    assert message in str(caught.value)  # the server's own words reach the error
    assert is_transient(caught.value) is transient
    assert server.requests[-1].path == "/apis/apps/v1/namespaces/prod/deployments/web"


def test_refused_connection_is_transient(server: HttpServer, api: KubernetesApiClient) -> None:
    server.close_listener()
    with pytest.raises(kubeops.KubernetesUnavailable) as caught:
        kubeops.get_replicas(api, WEB)
    assert caught.value.transient


def test_a_silent_server_times_out_at_the_client_timeout(
    server: HttpServer, api: KubernetesApiClient
) -> None:
    server.inject(count=10, delay_s=30.0)  # answers only when the server stops
    started = time.monotonic()
    with pytest.raises(kubeops.KubernetesUnavailable):
        kubeops.get_replicas(api, WEB)
    # one attempt of 0.3 s: a read timeout is not silently re-sent (tasks.clients' retry policy)
    assert time.monotonic() - started < 1.0


def test_top_without_a_metrics_api(server: HttpServer, api: KubernetesApiClient) -> None:
    groups = {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            }
        ],
    }
    server.route("GET", "/apis", lambda request: Response.json(groups))
    with pytest.raises(kubeops.MetricsUnavailable, match=r"^Metrics API not available$"):
        kubeops.top_pods(api, "prod")
    with pytest.raises(kubeops.MetricsUnavailable):
        kubeops.top_nodes(api)
    assert not any("metrics.k8s.io" in r.path for r in server.requests)
