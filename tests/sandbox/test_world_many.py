"""The world of many services: emotionscare and payments on cluster east, search on cluster west, each
its own app; faults by service; `status --json` per service; the catalogue the world writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes import config as kube_config

from runbook.catalogue import read_catalogue, resolve
from sandbox.__main__ import PORT_SPAN
from sandbox.control import ControlServer
from sandbox.demo.system import SANDBOX_PORTS
from sandbox.faults import FaultArgError
from sandbox.postgres import EmbeddedPostgres
from sandbox.testing import TEST_WORLD, settings_env
from sandbox.world import PORT_OFFSETS, World

TIMEOUT_S = 30.0  # generous: a busy machine slows the world's threads, not what the test asserts
HTTP = httpx.Client(timeout=TIMEOUT_S)


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture(scope="module")
def many_session(pg_server: EmbeddedPostgres) -> Iterator[tuple[World, ControlServer]]:
    world = World(services="many", postgres=pg_server, **TEST_WORLD).start()
    control = ControlServer(world).start()
    try:
        yield world, control
    finally:
        control.stop()
        world.stop()


@pytest.fixture
def many(many_session: tuple[World, ControlServer]) -> World:
    """The module's world of many services, every fault cleared and every service healthy."""
    world = many_session[0]
    world.reset(timeout_s=30)
    return world


def api_health(world: World, name: str) -> int:
    return HTTP.get(world.unit(name).health_urls["api_health"]).status_code


def health_codes(world: World) -> dict[str, int]:
    return {name: api_health(world, name) for name in world.service_names}


def cli(control: ControlServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOK_", "SANDBOX_"))}
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args, "--control", control.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PYTHONWARNINGS": "ignore"},
    )


def test_three_services_each_healthy_on_its_own_port_and_emulator(many: World) -> None:
    assert many.service_names == ["emotionscare", "payments", "search"]
    assert health_codes(many) == {"emotionscare": 200, "payments": 200, "search": 200}
    assert len({many.unit(n).service.url for n in many.service_names}) == 3
    assert set(many.clusters) == {"east", "west"} and many.clusters["east"].url != many.clusters["west"].url
    body = HTTP.get(many.unit("search").health_urls["api_health"]).json()
    assert body["service"] == "search" and body["database"] is None  # search has no database
    assert HTTP.get(many.unit("payments").health_urls["api_health"]).json()["database"]["ok"] is True

    # Each Deployment is on its own cluster's emulator only, reached by the kubeconfig's contexts.
    where = {"emotionscare": ("prod", "sandbox-east"), "payments": ("payments", "sandbox-east"),
             "search": ("search", "sandbox-west")}  # fmt: skip
    for context in ("sandbox-east", "sandbox-west"):
        api = kube_config.new_client_from_config(config_file=str(many.kubeconfig_path), context=context)
        with api:
            apps = k8s.AppsV1Api(api)
            found = {d.metadata.name for d in apps.list_deployment_for_all_namespaces().items}
        assert found == {name for name, (_ns, ctx) in where.items() if ctx == context}
    for name, (namespace, _ctx) in where.items():
        unit = many.unit(name)
        assert (unit.namespace, unit.deployment_name) == (namespace, name)
        assert unit.k8s is many.clusters[unit.cluster_name]
        assert unit.live_image() == f"registry.local/{name}:v1.1.0"


def test_bad_deploy_on_payments_breaks_payments_only_and_a_rollback_ends_it(many: World) -> None:
    west_before = len(many.clusters["west"].requests)
    message = many.inject("bad-deploy", service="payments")
    assert "registry.local/payments:v1.2.0-broken" in message
    assert health_codes(many) == {"emotionscare": 200, "payments": 500, "search": 200}
    assert many.live_image() == "registry.local/emotionscare:v1.1.0"  # the first service untouched
    assert many.active_faults() == [] and many.active_faults("payments") == ["bad-deploy"]
    assert len(many.clusters["west"].requests) == west_before  # nothing was asked of the other cluster

    payments = many.unit("payments")
    payments.rollout(payments.good_image, cause="kubectl rollout undo (a person)")
    assert many.active_faults("payments") == []
    assert api_health(many, "payments") == 200


def test_status_json_lists_faults_per_service_and_drops_an_undone_one(
    many: World, many_session: tuple[World, ControlServer]
) -> None:
    control = many_session[1]
    done = cli(control, "fault", "bad-deploy", "--service", "payments")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bad-deploy on payments: deployed registry.local/payments:v1.2.0-broken")
    injected = HTTP.post(control.url + "/faults/error-rate", json={"arg": "20", "service": "search"})
    assert injected.status_code == 200, injected.text

    def services() -> dict[str, Any]:
        shown = cli(control, "status", "--json")
        assert shown.returncode == 0, shown.stderr
        return dict(json.loads(shown.stdout)["services"])

    listed = services()
    assert {n: [f["name"] for f in s["active_faults"]] for n, s in listed.items()} == {
        "emotionscare": [],
        "payments": ["bad-deploy"],
        "search": ["error-rate"],
    }
    search = listed["search"]
    assert search["api_url"] == many.clusters["west"].url and search["cluster"] == "west"
    assert (search["namespace"], search["deployment"]) == ("search", "search")
    assert search["health_urls"]["api_health"] == many.unit("search").service.url + "/api/health"
    assert listed["payments"]["api_url"] == many.clusters["east"].url
    assert listed["payments"]["active_faults"][0]["args"]["mode"] == "api-500"

    # A person rolls payments back through the emulator's API: the fault is no longer active.
    payments = many.unit("payments")
    template = {
        "spec": {"template": {"spec": {"containers": [{"name": "payments", "image": payments.good_image}]}}}
    }
    url = f"{payments.k8s.url}/apis/apps/v1/namespaces/payments/deployments/payments"
    headers = {"Content-Type": "application/strategic-merge-patch+json"}
    assert HTTP.patch(url, json=template, headers=headers).status_code == 200
    after = services()
    assert after["payments"]["active_faults"] == []
    assert [f["name"] for f in after["search"]["active_faults"]] == ["error-rate"]

    cleared = HTTP.post(control.url + "/clear", params={"service": "search"}).json()
    assert all(s["active_faults"] == [] for s in cleared["status"]["services"].values())


def test_the_catalogue_validates_and_resolves_labels_to_the_right_service(many: World) -> None:
    catalogue = read_catalogue(many.catalogue_path)
    assert catalogue.names == ["emotionscare", "payments", "search"]
    env = many.settings_env()
    assert env["RUNBOOK_CATALOGUE"] == str(many.catalogue_path)
    assert env["RUNBOOK_KUBERNETES_API_URL"] == many.clusters["east"].url  # today's settings: the first
    text = many.catalogue_path.read_text()
    assert env["SANDBOX_PAYMENTS_DATABASE_DSN"] not in text  # secrets by reference only

    cases = {
        ("service", "payments-api"): "payments",
        ("app", "emotionscare"): "emotionscare",
        ("job", "search"): "search",
    }
    for (label, value), expected in cases.items():
        found = resolve(catalogue, {label: value})
        assert found is not None and found.name == expected, (label, value)
    by_workload = resolve(catalogue, {"namespace": "search", "deployment": "search"})
    assert by_workload is not None and by_workload.name == "search"
    assert resolve(catalogue, {"service": "billing"}) is None

    payments = catalogue.service("payments")
    with settings_env(many):
        assert payments.database is not None
        dsn = payments.database.dsn.read()
        assert dsn is not None and dsn.get_secret_value() == many.unit("payments").dsn
        key = payments.pagerduty.routing_key
        assert key is not None and key.read() is not None
    assert payments.slack.alerts_channel == "#payments-alerts"
    assert catalogue.service("search").database is None
    contexts = {c["name"]: c for c in json.loads(many.kubeconfig_path.read_text())["contexts"]}
    for service in catalogue.services:
        context = contexts[str(service.kubernetes.cluster)]["context"]
        cluster = many.unit(service.name).cluster_name
        server = {
            c["name"]: c["cluster"]["server"]
            for c in json.loads(many.kubeconfig_path.read_text())["clusters"]
        }
        assert server[context["cluster"]] == many.clusters[cluster].url


def test_a_database_fault_on_search_is_refused_clearly(
    many: World, many_session: tuple[World, ControlServer]
) -> None:
    with pytest.raises(FaultArgError, match="db-down: service search has no database"):
        many.inject("db-down", service="search")
    with pytest.raises(FaultArgError, match="no service 'billing'; services: emotionscare, payments, search"):
        many.inject("bad-deploy", service="billing")
    refused = cli(many_session[1], "fault", "slow-query", "--service", "search")
    assert refused.returncode == 2
    assert (
        refused.stderr.strip()
        == "sandbox: slow-query: service search has no database (the fault acts on its database)"
    )
    answer = HTTP.post(many_session[1].url + "/faults/journal-broken", json={"service": "search"})
    assert answer.status_code == 422 and "search has no database" in answer.json()["error"]
    assert many.active_faults("search") == [] and health_codes(many)["search"] == 200


def test_db_down_on_payments_closes_its_database_only(many: World) -> None:
    many.inject("db-down", service="payments")
    assert many.postgres.running
    assert health_codes(many) == {"emotionscare": 200, "payments": 500, "search": 200}
    assert many.active_faults("payments") == ["db-down"]
    many.clear("db-down", service="payments")
    many.unit("payments").service.reset_db_pool("test")
    assert api_health(many, "payments") == 200


def test_the_port_span_of_the_cli_and_the_demo_covers_every_listener() -> None:
    assert max(PORT_OFFSETS.values()) == PORT_SPAN
    assert SANDBOX_PORTS == PORT_SPAN + 1


def test_a_world_of_one_is_unchanged(tmp_path: Path) -> None:
    one = World(tmp_path)  # not started: what it would run (the existing suites start it many times)
    assert one.service_names == ["emotionscare"] and not one.many
    assert [(u.cluster_name, u.namespace, u.deployment_name) for u in one.units] == [
        ("east", "prod", "emotionscare")
    ]


def test_the_control_api_lists_active_faults_per_service(
    many: World, many_session: tuple[World, ControlServer]
) -> None:
    url = many_session[1].url
    many.inject("infra-down", service="search")
    listed = HTTP.get(url + "/faults").json()
    assert listed["active"] == [] and listed["services"]["search"] == ["infra-down"]
    assert HTTP.get(url + "/faults", params={"service": "search"}).json()["active"] == ["infra-down"]
    assert HTTP.get(url + "/faults", params={"service": "billing"}).status_code == 422
    lifted = HTTP.delete(url + "/faults/infra-down", params={"service": "search"})
    assert lifted.status_code == 200, lifted.text
    assert many.active_faults("search") == []
