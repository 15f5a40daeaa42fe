"""The service catalogue: the file and its checks (one line per error naming service and field), the
settings read as a catalogue of one, and the resolution of an alert to its service."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import SecretStr

from runbook.catalogue import (
    Catalogue,
    CatalogueError,
    SecretRef,
    Timings,
    catalogue_from_settings,
    load_catalogue,
    match,
    parse_catalogue,
    read_catalogue,
    resolve,
    schema_markdown,
)
from runbook.catalogue.reference import MODELS
from runbook.errors import SettingsError
from runbook.settings import ResponseSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs/examples/catalogue.example.yaml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RUNBOOK_* from the caller's environment and no .env of the repo leaks into a test."""
    for key in list(os.environ):
        if key.upper().startswith("RUNBOOK_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def run(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("RUNBOOK_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "runbook.catalogue", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
    )


def service(name: str, **fields: str) -> str:
    """One service entry of a YAML catalogue: the required fields, `fields` (YAML values) added or replacing."""
    entry = {
        "team": "t",
        "kubernetes": f"{{namespace: ns-{name}, deployment: {name}}}",
        "health": f"{{base_url: https://{name}.example}}",
        **fields,
    }
    return "\n".join([f"- name: {name}", *[f"  {key}: {value}" for key, value in entry.items()]])


def write(tmp_path: Path, *services: str, name: str = "catalogue.yaml") -> Path:
    path = tmp_path / name
    path.write_text("services:\n" + textwrap.indent("\n".join(services), "  ") + "\n", encoding="utf-8")
    return path


# --- the command -------------------------------------------------------------------------------------------


def test_check_accepts_the_example_three_services_on_two_clusters() -> None:
    done = run("check", str(EXAMPLE))
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok: 3 services\n", "")
    catalogue = read_catalogue(EXAMPLE)
    assert len({s.kubernetes.cluster for s in catalogue.services}) == 2


INLINE = "postgresql://app:hunter2@db.internal/payments"


@pytest.mark.parametrize(
    ("entries", "line"),
    [
        pytest.param(
            [service("payments", colour="red"), service("shop")],
            "payments.colour: unknown field",
            id="unknown-field",
        ),
        pytest.param(
            [service("payments"), service("shop"), service("payments")],
            "payments.name: the service is listed twice (services 0 and 2)",
            id="a-service-twice",
        ),
        pytest.param(
            [service("shop"), service("payments", database=f"{{dsn: '{INLINE}'}}")],
            "payments.database.dsn: write it by reference ({env: VAR} or {file: PATH}), not inline",
            id="dsn-inline",
        ),
        pytest.param(
            [service("payments", kubernetes="{namespace: p, deployment: p, replicas: {min: 4, max: 2}}")],
            "payments.kubernetes.replicas: min (4) must not exceed max (2)",
            id="replica-bounds",
        ),
        pytest.param(
            [service("payments", aliases="[billing]"), service("shop", aliases="[Billing]")],
            "shop.aliases: 'Billing' is already payments's alias",
            id="alias-twice",
        ),
        pytest.param(
            [service("payments", pagerduty="{routing_key: {env: PD_KEY, file: /run/pd}}")],
            "payments.pagerduty.routing_key: give exactly one of env or file",
            id="reference-both",
        ),
        pytest.param(
            [service("payments", pagerduty="{routing_key: {file: run/pd}}")],
            "payments.pagerduty.routing_key.file: must be an absolute path (got 'run/pd')",
            id="reference-relative",
        ),
        pytest.param(
            [
                service("payments"),
                service("shop", kubernetes="{namespace: ns-payments, deployment: payments}"),
            ],
            "shop.kubernetes: deployment ns-payments/payments on the same cluster is already payments's",
            id="one-deployment-two-services",
        ),
        pytest.param(
            [service("payments", kubernetes="{namespace: p, deployment: p, cluster: 'two words'}")],
            "payments.kubernetes.cluster: must be a kubeconfig context, 'in-cluster' or an http(s) API URL "
            "(got 'two words')",
            id="cluster",
        ),
        pytest.param(
            [
                service("payments"),
                "- {name: shop, kubernetes: {namespace: s, deployment: s}, health: {base_url: http://s}}",
            ],
            "shop.team: required",
            id="missing",
        ),
    ],
)
def test_check_names_the_service_and_field_in_one_line(tmp_path: Path, entries: list[str], line: str) -> None:
    done = run("check", str(write(tmp_path, *entries)))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [line]
    assert "hunter2" not in done.stderr


def test_check_prints_one_line_per_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        service("payments", colour="red", database=f"{{dsn: '{INLINE}'}}"),
        service("shop", health="{base_url: ftp://shop}"),
    )
    done = run("check", str(path))
    assert done.returncode == 2
    assert sorted(done.stderr.splitlines()) == [
        "payments.colour: unknown field",
        "payments.database.dsn: write it by reference ({env: VAR} or {file: PATH}), not inline",
        "shop.health.base_url: must be an http(s) URL (got 'ftp://shop')",
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("services: [", "not valid YAML (line 1)"),
        ("services:\n  - name: a\n    name: b\n", "not valid YAML (line 3): key 'name' written twice"),
        ("- a\n", "catalogue: must be a mapping with a 'services' list"),
        ("services: []\n", "catalogue.services: List should have at least 1 item after validation, not 0"),
    ],
)
def test_a_file_that_is_not_a_catalogue_is_one_line(tmp_path: Path, text: str, line: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError) as caught:
        read_catalogue(path)
    assert len(caught.value.lines) == 1 and line in caught.value.lines[0]


def test_check_refuses_bad_arguments_and_missing_files(tmp_path: Path) -> None:
    assert run("check").returncode == 2
    done = run("check", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2 and done.stderr.startswith(f"{tmp_path / 'nope.yaml'}: cannot read it")


def test_a_toml_catalogue_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.toml"
    path.write_text(
        textwrap.dedent(
            """\
            [[services]]
            name = "payments"
            aliases = ["billing"]
            team = "payments"
            kubernetes = { namespace = "payments", deployment = "payments-api", cluster = "prod-eu" }
            health = { base_url = "https://payments.example" }
            database = { dsn = { env = "PAYMENTS_DSN" } }
            """
        ),
        encoding="utf-8",
    )
    catalogue = read_catalogue(path)
    assert catalogue.service("billing").database is not None
    assert catalogue.service("billing").database.dsn == SecretRef(env="PAYMENTS_DSN")


def test_show_prints_references_never_secret_values(tmp_path: Path) -> None:
    done = run("show", str(EXAMPLE), env={"EMOTIONSCARE_DATABASE_DSN": INLINE})
    assert done.returncode == 0, done.stderr
    assert "dsn:\n      env: EMOTIONSCARE_DATABASE_DSN" in done.stdout and "hunter2" not in done.stdout
    # Without a file: the settings' catalogue of one, its DSN named by its setting.
    done = run("show", env={"RUNBOOK_DATABASE_DSN": INLINE})
    assert done.returncode == 0, done.stderr
    assert "env: RUNBOOK_DATABASE_DSN" in done.stdout and "hunter2" not in done.stdout


# --- secrets by reference ----------------------------------------------------------------------------------


def test_references_are_read_when_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENTS_DSN", INLINE)
    assert SecretRef(env="PAYMENTS_DSN").read() == SecretStr(INLINE)
    assert SecretRef(env="UNSET_VARIABLE_X").read() is None
    secret = tmp_path / "dsn"
    secret.write_text(INLINE + "\n", encoding="utf-8")
    assert SecretRef(file=secret).read() == SecretStr(INLINE)
    with pytest.raises(SettingsError, match="secret file"):
        SecretRef(file=tmp_path / "missing").read()
    assert str(SecretRef(env="PAYMENTS_DSN")) == "{env: PAYMENTS_DSN}"


# --- the settings as a catalogue of one ----------------------------------------------------------------------


def test_the_settings_read_as_a_catalogue_of_one() -> None:
    settings = load_settings(
        env_file=None,
        service={"name": "emotionscare", "base_url": "http://127.0.0.1:8081", "health_path": "/healthz"},
        kubernetes={
            "namespace": "prod",
            "deployment": "web",
            "container": "app",
            "api_url": "http://127.0.0.1:9",
        },
        database={"dsn": INLINE},
        pagerduty={"routing_key": "pd-key"},
        slack={
            "alerts_channel": "#a",
            "incidents_channel": "#i",
            "lead_handle": "@lead",
            "devops_channel": "#ops",
        },
        sentry={"project": "emotionscare-web"},
        deploys={"rollback_window_min": 20},
    )
    catalogue = load_catalogue(settings)
    assert catalogue == catalogue_from_settings(settings) and catalogue.names == ["emotionscare"]
    (one,) = catalogue.services
    assert one.aliases == ["emotionscare-web", "web"]  # the Sentry project and the Deployment name it too
    k8s = settings.kubernetes
    assert (one.kubernetes.cluster, one.kubernetes.namespace, one.kubernetes.deployment) == (
        k8s.api_url,
        k8s.namespace,
        k8s.deployment,
    )
    assert one.kubernetes.container == k8s.container and one.kubernetes.cluster_kind == "api-url"
    assert (one.health.base_url, one.health.health_path, one.health.api_health_path) == (
        settings.service.base_url,
        settings.service.health_path,
        settings.service.api_health_path,
    )
    assert one.database is not None and one.database.dsn.read() == settings.database.dsn
    assert str(one.database.dsn) == "{env: RUNBOOK_DATABASE_DSN}"
    assert one.pagerduty.routing_key is not None
    assert one.pagerduty.routing_key.read() == settings.pagerduty.routing_key
    assert (one.slack.alerts_channel, one.slack.incidents_channel) == ("#a", "#i")
    slack = settings.slack
    assert (one.escalation.oncall, one.escalation.lead, one.escalation.devops, one.escalation.security) == (
        slack.oncall_handle,
        slack.lead_handle,
        slack.devops_channel,
        slack.security_handle,
    )
    assert [(a.name, a.health_url, a.feature_flag, a.feature, a.method) for a in one.external_apis] == [
        (a.name, a.health_url, a.feature_flag, a.feature, a.method) for a in settings.external_apis
    ]
    assert one.rollback_window_min == 20 and one.timings == Timings()


@pytest.mark.parametrize(
    ("kubernetes", "cluster", "kind"),
    [
        ({}, None, "current-context"),
        ({"context": "prod-eu"}, "prod-eu", "context"),
        ({"in_cluster": True}, "in-cluster", "in-cluster"),
    ],
)
def test_the_catalogue_of_one_reaches_the_settings_cluster(
    kubernetes: dict[str, object], cluster: str | None, kind: str
) -> None:
    (one,) = catalogue_from_settings(load_settings(env_file=None, kubernetes=kubernetes)).services
    assert (one.kubernetes.cluster, one.kubernetes.cluster_kind) == (cluster, kind)
    assert one.database is None  # no DSN set: no database


def test_runbook_catalogue_names_the_file(tmp_path: Path) -> None:
    catalogue = load_catalogue(load_settings(env_file=None, catalogue=str(EXAMPLE)))
    assert catalogue.names == ["emotionscare", "payments", "reports"]
    with pytest.raises(CatalogueError, match=r"^RUNBOOK_CATALOGUE: file not found"):
        load_catalogue(load_settings(env_file=None, catalogue=str(tmp_path / "nope.yaml")))
    bad = write(tmp_path, service("payments", colour="red"))
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(load_settings(env_file=None, catalogue=str(bad)))
    assert caught.value.lines == [f"{bad}: payments.colour: unknown field"]


def test_timings_are_the_guides_timings() -> None:
    assert list(Timings.model_fields) == list(ResponseSettings.model_fields)


def test_the_schema_describes_every_field() -> None:
    doc = schema_markdown()
    for model in MODELS:
        for name in model.model_fields:
            assert f"| `{name}` |" in doc, f"{model.__name__}.{name} missing from the schema"


# --- resolution ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return parse_catalogue(
        {
            "services": [
                {
                    "name": "emotionscare",
                    "aliases": ["emotionscare-web"],
                    "team": "web",
                    "kubernetes": {"cluster": "eu", "namespace": "prod", "deployment": "emotionscare"},
                    "health": {"base_url": "https://emotionscare.com"},
                },
                {
                    "name": "payments",
                    "aliases": ["billing", "Payments Folder"],
                    "team": "payments",
                    "kubernetes": {"cluster": "eu", "namespace": "payments", "deployment": "api"},
                    "health": {"base_url": "https://payments.example"},
                },
                {
                    "name": "reports",
                    "aliases": ["reports-job"],
                    "team": "data",
                    "kubernetes": {"cluster": "us", "namespace": "payments", "deployment": "api"},
                    "health": {"base_url": "https://reports.example"},
                },
            ]
        }
    )


@pytest.mark.parametrize(
    ("labels", "sentry", "expected", "by"),
    [
        ({"service": "payments"}, None, "payments", "label service=payments"),
        ({"service": "BILLING"}, None, "payments", "label service=BILLING"),
        ({"app": "emotionscare-web"}, None, "emotionscare", "label app=emotionscare-web"),
        ({"app.kubernetes.io/name": "billing"}, None, "payments", "label app.kubernetes.io/name=billing"),
        ({"app_kubernetes_io_name": "reports"}, None, "reports", "label app_kubernetes_io_name=reports"),
        # first match wins, in the order service, app, ...; a value naming nothing falls through
        ({"service": "payments", "app": "reports"}, None, "payments", "label service=payments"),
        ({"service": "checkout", "app": "reports"}, None, "reports", "label app=reports"),
        (
            {"namespace": "prod", "deployment": "emotionscare"},
            None,
            "emotionscare",
            "labels namespace=prod deployment=emotionscare",
        ),
        # the same Deployment on two clusters: the cluster label picks, else nothing is chosen
        (
            {"namespace": "payments", "deployment": "api", "cluster": "us"},
            None,
            "reports",
            "labels namespace=payments deployment=api",
        ),
        ({"namespace": "payments", "deployment": "api"}, None, None, None),
        ({"namespace": "prod"}, None, None, None),
        ({"job": "reports-job"}, None, "reports", "label job=reports-job"),
        (
            {"service": "emotionscare", "job": "reports-job"},
            None,
            "emotionscare",
            "label service=emotionscare",
        ),
        ({}, "billing", "payments", "sentry project billing"),
        ({"app": "payments"}, "emotionscare", "payments", "label app=payments"),
        ({"job": "node-exporter"}, "reports", "reports", "sentry project reports"),
        ({"grafana_folder": "Payments Folder"}, None, "payments", "label grafana_folder=Payments Folder"),
        ({"service": "checkout", "job": "kubernetes-pods"}, "checkout", None, None),
        ({}, None, None, None),
    ],
)
def test_resolve_finds_the_service_an_alert_names(
    catalogue: Catalogue, labels: dict[str, str], sentry: str | None, expected: str | None, by: str | None
) -> None:
    found = resolve(catalogue, labels, sentry)
    assert (found.name if found else None) == expected
    how = match(catalogue, labels, sentry)
    assert (how.by if how else None) == by
