"""The per-run service binding (tasks/runtime.py) and each service's view of the settings
(runbook/catalogue/overlay.py): what a runbook reads is its incident's service, never another's."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from flows.background import background
from runbook.catalogue import catalogue_from_settings
from runbook.catalogue.overlay import NoServiceBound, settings_for
from runbook.settings import load_settings
from tasks import runtime
from tasks.clients import cluster_api

CATALOGUE = """
services:
  - name: alpha
    aliases: [alpha-web]
    team: web
    kubernetes: {cluster: "http://127.0.0.1:1", namespace: prod, deployment: alpha}
    health: {base_url: "http://127.0.0.1:2"}
    database: {dsn: {env: ALPHA_DSN}}
    external_apis:
      - {name: hume, health_url: "http://127.0.0.1:3/health", feature_flag: FEATURE_X_ENABLED, feature: x}
    slack: {alerts_channel: "#alpha-alerts", incidents_channel: "#alpha-incidents"}
    pagerduty: {routing_key: {env: ALPHA_PD}}
    escalation: {oncall: "@alpha-oncall", lead: "@alpha-lead"}
    rollback_window_min: 30
    timings: {settle_s: 7}
  - name: beta
    team: pay
    kubernetes: {cluster: "http://127.0.0.1:1", namespace: beta, deployment: beta}
    health: {base_url: "http://127.0.0.1:4"}
  - name: gamma
    team: search
    kubernetes: {cluster: west, namespace: search, deployment: gamma}
    health: {base_url: "http://127.0.0.1:5"}
"""


@pytest.fixture
def many(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A catalogue of three services (two on one API URL, one on a kubeconfig context) in RUNBOOK_CATALOGUE."""
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for key, value in {
        "RUNBOOK_CATALOGUE": str(path),
        "RUNBOOK_STORE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        "RUNBOOK_KUBERNETES_API_URL": "http://127.0.0.1:1",
        "RUNBOOK_KUBERNETES_TOKEN": "east-token",
        "RUNBOOK_PAGERDUTY_ROUTING_KEY": "DEFAULTKEY",
        "ALPHA_DSN": "postgresql://alpha@127.0.0.1:6/alpha",
        "ALPHA_PD": "ALPHAKEY",
    }.items():
        monkeypatch.setenv(key, value)
    runtime.reset()
    yield path
    runtime.reset()


@pytest.fixture
def one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNBOOK_CATALOGUE", raising=False)
    monkeypatch.setenv("RUNBOOK_STORE_URL", f"sqlite:///{tmp_path / 'store.sqlite3'}")
    runtime.reset()
    yield
    runtime.reset()


def test_the_settings_alone_are_their_one_service_unchanged(one: None) -> None:
    assert runtime.settings() is runtime.base_settings()
    assert runtime.service().name == runtime.base_settings().service.name
    with runtime.bound(runtime.base_settings().service.name):
        assert runtime.settings() is runtime.base_settings()


def test_an_uncatalogued_service_has_no_target_even_with_one_service(one: None) -> None:
    with runtime.bound("payments") as found:
        assert found is None
        with pytest.raises(runtime.UnknownService, match="'payments' is not in the catalogue"):
            runtime.service()
        with pytest.raises(NoServiceBound, match="payments"):
            _ = runtime.settings().kubernetes.namespace
        with pytest.raises(NoServiceBound):
            _ = runtime.settings().service.base_url
        with pytest.raises(NoServiceBound):
            list(runtime.settings().external_apis)
        # what is shared still works: the store, the default channels and PagerDuty key
        assert runtime.settings().store.url.startswith("sqlite:///")
        assert runtime.settings().slack.alerts_channel == "#alerts-critical"


def test_with_several_services_nothing_bound_refuses_every_target(many: Path) -> None:
    with pytest.raises(NoServiceBound, match="none is bound"):
        _ = runtime.settings().kubernetes.deployment
    with pytest.raises(NoServiceBound, match="alpha, beta, gamma"):
        runtime.service()
    with pytest.raises(NoServiceBound):
        cluster_api(runtime.settings())
    assert runtime.settings().environment == "development"  # the shared parts are readable


def test_a_bound_service_sees_its_own_target(many: Path) -> None:
    with runtime.bound("alpha-web") as found:  # an alias binds the service
        assert found is not None and found.name == "alpha"
        s = runtime.settings()
        assert (s.service.name, s.kubernetes.namespace, s.kubernetes.deployment) == ("alpha", "prod", "alpha")
        assert str(s.service.base_url).startswith("http://127.0.0.1:2")
        assert s.database.dsn is not None and s.database.dsn.get_secret_value().endswith("/alpha")
        assert [a.name for a in s.external_apis] == ["hume"]
        assert (s.slack.alerts_channel, s.slack.incidents_channel) == ("#alpha-alerts", "#alpha-incidents")
        assert (s.slack.oncall_handle, s.slack.lead_handle) == ("@alpha-oncall", "@alpha-lead")
        assert (
            s.pagerduty.routing_key is not None and s.pagerduty.routing_key.get_secret_value() == "ALPHAKEY"
        )
        assert (s.deploys.rollback_window_min, s.response.settle_s) == (30, 7)
        with runtime.bound("beta"):  # the innermost binding wins, and ends with its block
            b = runtime.settings()
            assert (b.kubernetes.namespace, b.database.dsn, b.external_apis) == ("beta", None, [])
            assert b.pagerduty.routing_key is None  # no key of its own: not paged (never alpha's)
            assert b.slack.incidents_channel == "#incidents"
        assert runtime.settings().kubernetes.namespace == "prod"
    with pytest.raises(NoServiceBound):
        runtime.service()


def test_a_token_goes_only_to_its_own_cluster(many: Path) -> None:
    catalogue = runtime.catalogue()
    base = runtime.base_settings()
    east = settings_for(base, catalogue.service("beta")).kubernetes
    west = settings_for(base, catalogue.service("gamma")).kubernetes
    assert east.api_url == "http://127.0.0.1:1" and east.token is not None
    assert (west.api_url, west.context, west.token) == (None, "west", None)


def test_one_client_per_cluster_not_per_service(many: Path) -> None:
    with runtime.bound("alpha"):
        alpha = cluster_api(runtime.settings())
    with runtime.bound("beta"):
        beta = cluster_api(runtime.settings())
    assert alpha is beta  # the same cluster: one connection pool
    assert alpha.configuration.host == "http://127.0.0.1:1"
    other = load_settings(kubernetes={"api_url": "http://127.0.0.1:9"})
    assert cluster_api(other) is not alpha


def test_the_catalogue_of_one_overlays_to_the_settings_themselves(one: None) -> None:
    base = runtime.base_settings()
    view = settings_for(base, catalogue_from_settings(base).services[0])
    for group in ("service", "kubernetes", "slack", "response", "deploys"):
        assert getattr(view, group) == getattr(base, group), group
    assert [a.name for a in view.external_apis] == [a.name for a in base.external_apis]


# --- where the binding reaches inside Prefect ----------------------------------------------------------


@task
def _seen() -> str:
    return runtime.settings().kubernetes.namespace


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
def _child(name: str) -> str:
    runtime.bind(name)
    return _seen()


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
def _parent() -> dict[str, object]:
    runtime.bind("alpha")
    seen: dict[str, object] = {"direct": _seen(), "submitted": _seen.submit().result()}
    seen["child"] = _child("gamma")  # a subflow binds its own service ...
    seen["after child"] = _seen()  # ... and its parent keeps its own
    box: list[str] = []

    class Probe:
        name = "probe"

        def run(self, stop: threading.Event) -> None:
            box.append(runtime.settings().kubernetes.namespace)

    with background(Probe()):  # flows/background.py copies the flow run's context into its threads
        pass
    seen["background"] = box
    plain: list[object] = []
    thread = threading.Thread(target=lambda: plain.append(_try_namespace()))
    thread.start()
    thread.join()
    seen["plain thread"] = plain[0]
    return seen


def _try_namespace() -> object:
    try:
        return runtime.settings().kubernetes.namespace
    except NoServiceBound as exc:
        return type(exc)


def test_tasks_subflows_and_our_threads_see_the_run_binding(many: Path, prefect_api: str) -> None:
    seen = _parent()
    assert seen == {
        "direct": "prod",
        "submitted": "prod",
        "child": "search",
        "after child": "prod",
        "background": ["prod"],
        # a thread started without the context knows no flow run: it refuses rather than guess
        "plain thread": NoServiceBound,
    }


# --- which service a drill exercises ---------------------------------------------------------------------


def test_drills_take_a_catalogued_service_and_the_monthly_one_goes_round(many: Path) -> None:
    from flows.drilling.options import DrillRefused
    from flows.drilling.services import drill_service, monthly_service
    from runbook.drills import scenario

    assert drill_service(None).name == "alpha"  # the catalogue's first
    assert drill_service("alpha-web").name == "alpha"
    with pytest.raises(DrillRefused, match="'ledger' is not in the catalogue"):
        drill_service("ledger")
    error_rate = scenario("high-error-rate")
    assert [monthly_service(error_rate, None, m).name for m in (1, 2, 3, 4)] == [
        "alpha",
        "beta",
        "gamma",
        "alpha",
    ]
    # a database failure needs a database, an API outage the API: only alpha has them, every month
    for key in ("database-failure", "external-api-failure"):
        assert {monthly_service(scenario(key), None, m).name for m in range(1, 13)} == {"alpha"}
    assert monthly_service(scenario("database-failure"), ["beta", "gamma"], 5) is None
    assert monthly_service(error_rate, ["gamma", "beta"], 2).name == "beta"
