"""How alerts find their service: a 3-service catalogue, alerts from every source over real HTTP.

Each alert lands on the catalogued service its labels (or Sentry project, or Grafana folder) name, by
name or alias; alias and canonical spellings dedupe into one incident; two services are two incidents;
an uncatalogued service is stored and marked; a bad catalogue stops `python -m intake` with one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from intake.app import create_app
from intake.auth import sentry_signature
from intake.config import IntakeConfig
from intake.ingest import StoreIngestor
from intake.outbox import Outbox
from intake.services import NOT_IN_CATALOGUE, UNKNOWN
from runbook.catalogue import read_catalogue

DATA = Path(__file__).resolve().parents[1] / "data"
TOKENS = {"alertmanager": "am-token", "grafana": "gf-token", "generic": "gen-token"}
SECRET = "sentry-client-secret"

CATALOGUE = """\
services:
  - name: emotionscare
    aliases: [emotionscare-web]
    team: web
    kubernetes: {cluster: sandbox-east, namespace: prod, deployment: emotionscare}
    health: {base_url: "http://127.0.0.1:1"}
  - name: payments
    aliases: [payments-api, billing]
    team: payments
    kubernetes: {cluster: sandbox-east, namespace: payments, deployment: payments}
    health: {base_url: "http://127.0.0.1:2"}
  - name: search
    aliases: [search-api]
    team: search
    kubernetes: {cluster: sandbox-west, namespace: search, deployment: search}
    health: {base_url: "http://127.0.0.1:3"}
"""


@pytest.fixture
def catalogue_path(tmp_path: Path) -> Path:
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE)
    return path


@pytest.fixture
def svc_client(
    catalogue_path: Path,
    store: Any,
    outbox: Outbox,
    serve: Callable[[Starlette], AbstractContextManager[str]],
) -> Iterator[httpx.Client]:
    config = IntakeConfig(
        tokens={k: SecretStr(v) for k, v in TOKENS.items()},
        sentry_client_secret=SecretStr(SECRET),
        catalogue=read_catalogue(catalogue_path),
    )
    app = create_app(config, StoreIngestor(store, outbox, config))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30.0) as client:
        yield client


def am_alert(
    labels: dict[str, str], *, fingerprint: str | None = None, status: str = "firing"
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "HighErrorRate", **labels},
        "annotations": {"summary": "errors"},
        "startsAt": "2026-12-06T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint if fingerprint is not None else uuid.uuid4().hex[:16],
    }


def am_body(*alerts: dict[str, Any]) -> bytes:
    return json.dumps({"version": "4", "status": "firing", "receiver": "r", "alerts": list(alerts)}).encode()


def grafana_body(labels: dict[str, str]) -> bytes:
    document = json.loads((DATA / "grafana_firing.json").read_text())
    document["alerts"] = document["alerts"][:1]
    document["alerts"][0]["labels"] = {"alertname": "High CPU usage", **labels}
    return json.dumps(document).encode()


def sentry_body(project: str) -> bytes:
    text = (DATA / "sentry_event_alert.json").read_text()
    document = json.loads(text.replace("/emotionscare-web/", f"/{project}/"))
    tags = document["data"]["event"].get("tags") or []
    document["data"]["event"]["tags"] = [t for t in tags if t[0] != "service"]
    return json.dumps(document).encode()


def post(client: httpx.Client, source: str, body: bytes) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if source == "sentry":
        headers |= {
            "Sentry-Hook-Resource": "event_alert",
            "Sentry-Hook-Timestamp": str(int(time.time())),
            "Sentry-Hook-Signature": sentry_signature(SECRET, body),
            "Request-ID": str(uuid.uuid4()),
        }
    else:
        headers["Authorization"] = f"Bearer {TOKENS[source]}"
    answer = client.post(f"/alerts/{source}", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    receipt: dict[str, Any] = answer.json()
    return receipt


def incident_of(store: Any, receipt: dict[str, Any]) -> Any:
    (incident_id,) = receipt["incidents_created"] + receipt["incidents_joined"]
    return store.get_incident(incident_id)


@pytest.mark.parametrize(
    ("source", "body", "service"),
    [
        ("alertmanager", am_body(am_alert({"service": "payments"})), "payments"),
        ("alertmanager", am_body(am_alert({"app": "Payments-API"})), "payments"),
        ("alertmanager", am_body(am_alert({"app_kubernetes_io_name": "search-api"})), "search"),
        ("alertmanager", am_body(am_alert({"namespace": "payments", "deployment": "payments"})), "payments"),
        ("alertmanager", am_body(am_alert({"job": "search"})), "search"),
        ("grafana", grafana_body({"grafana_folder": "search-api"}), "search"),
        ("grafana", grafana_body({"service": "billing", "grafana_folder": "general"}), "payments"),
        ("sentry", sentry_body("billing"), "payments"),
        ("sentry", sentry_body("emotionscare-web"), "emotionscare"),
        ("generic", json.dumps({"alerts": [{"name": "Slow", "service": "search-api"}]}).encode(), "search"),
        (
            "generic",
            json.dumps({"alerts": [{"name": "Slow", "labels": {"app": "billing"}}]}).encode(),
            "payments",
        ),
    ],
    ids=[
        "am-service",
        "am-app-alias-any-case",
        "am-k8s-name-alias",
        "am-namespace-deployment",
        "am-job",
        "grafana-folder",
        "grafana-service-label",
        "sentry-project-alias",
        "sentry-project-alias-2",
        "generic-field",
        "generic-label",
    ],
)
def test_an_alert_lands_on_the_service_it_names(
    svc_client: httpx.Client, store: Any, source: str, body: bytes, service: str
) -> None:
    receipt = post(svc_client, source, body)

    incident = incident_of(store, receipt)
    assert incident.service == service
    assert incident.dedupe_key.startswith(f"{service}/")
    assert NOT_IN_CATALOGUE not in {e.kind for e in store.timeline(incident.id)}
    (alert,) = store.list_alerts()
    assert alert.service == service


def test_alias_and_canonical_spellings_dedupe_into_one_incident(svc_client: httpx.Client, store: Any) -> None:
    # Alertmanager's own fingerprints differ (the label sets differ); the service is the same.
    first = post(svc_client, "alertmanager", am_body(am_alert({"service": "payments", "instance": "a"})))
    second = post(svc_client, "alertmanager", am_body(am_alert({"service": "BILLING", "instance": "a"})))
    third = post(svc_client, "alertmanager", am_body(am_alert({"service": "payments-api", "instance": "a"})))

    assert len(first["incidents_created"]) == 1
    assert second["incidents_joined"] == third["incidents_joined"] == first["incidents_created"]
    (incident,) = store.list_incidents()
    assert (incident.service, incident.alert_count) == ("payments", 3)

    # a resolved alert under the alias finds the incident opened under the name
    resolved = am_alert({"service": "billing", "instance": "a"}, status="resolved")
    resolved["endsAt"] = "2026-12-06T10:05:00Z"
    receipt = post(svc_client, "alertmanager", am_body(resolved))
    assert receipt["incidents_marked_resolved"] == [incident.id]


def test_generic_alias_and_name_dedupe_together(svc_client: httpx.Client, store: Any) -> None:
    for spelling in ("search", "search-api", "Search"):
        post(svc_client, "generic", json.dumps({"alerts": [{"name": "Slow", "service": spelling}]}).encode())

    (incident,) = store.list_incidents()
    assert (incident.service, incident.alert_count) == ("search", 3)


def test_one_alert_on_two_services_is_two_incidents(svc_client: httpx.Client, store: Any) -> None:
    receipt = post(
        svc_client,
        "alertmanager",
        am_body(
            am_alert({"service": "payments"}, fingerprint="f1"),
            am_alert({"service": "search"}, fingerprint="f1"),
        ),
    )

    assert len(receipt["incidents_created"]) == 2
    assert sorted(i.service for i in store.list_incidents()) == ["payments", "search"]


def test_a_generic_alerts_own_service_field_decides(svc_client: httpx.Client, store: Any) -> None:
    body = {"alerts": [{"name": "Slow", "service": "ledger", "labels": {"app": "payments"}}]}

    receipt = post(svc_client, "generic", json.dumps(body).encode())

    incident = incident_of(store, receipt)
    assert incident.service == "ledger"
    assert NOT_IN_CATALOGUE in {e.kind for e in store.timeline(incident.id)}


@pytest.mark.parametrize(
    ("labels", "service"),
    [({"service": "ledger"}, "ledger"), ({"job": "node-exporter"}, UNKNOWN), ({}, UNKNOWN)],
    ids=["named-not-catalogued", "job-names-no-service", "names-nothing"],
)
def test_an_alert_for_a_service_not_in_the_catalogue_is_stored_and_marked(
    svc_client: httpx.Client, store: Any, outbox: Outbox, labels: dict[str, str], service: str
) -> None:
    receipt = post(svc_client, "alertmanager", am_body(am_alert(labels)))
    again = post(svc_client, "alertmanager", am_body(am_alert(labels)))

    incident = incident_of(store, receipt)
    assert again["incidents_joined"] == [incident.id]
    assert incident.service == service
    marks = [e for e in store.timeline(incident.id) if e.kind == NOT_IN_CATALOGUE]
    assert len(marks) == 1, "marked once, when opened"
    assert marks[0].actor == "intake"
    assert f"{service!r} is not in the catalogue" in marks[0].message
    assert outbox.depth() == 1, "respond still runs for it (to escalate)"


def test_the_intake_process_loads_the_catalogue(
    tmp_path: Path,
    store_url: str,
    catalogue_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    intake_process: Callable[[Path, str, str], AbstractContextManager[tuple[subprocess.Popen[bytes], str]]],
    store: Any,
) -> None:
    monkeypatch.setenv("RUNBOOK_CATALOGUE", str(catalogue_path))
    with intake_process(tmp_path, store_url, "intake") as (_, url), httpx.Client(base_url=url) as client:
        receipt = post(client, "alertmanager", am_body(am_alert({"app": "billing"})))

    assert incident_of(store, receipt).service == "payments"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            CATALOGUE.replace("    team: search\n", "    team: search\n    colour: blue\n"),
            "search.colour: unknown field",
        ),
        (
            CATALOGUE
            + "  - name: payments\n    team: x\n    kubernetes: {namespace: a, deployment: b}\n    health: {base_url: 'http://x'}\n",
            "payments",
        ),
        ("services: [", "not valid YAML"),
    ],
    ids=["unknown-field", "service-twice", "not-yaml"],
)
def test_a_bad_catalogue_stops_the_intake_with_one_line(
    tmp_path: Path, store_url: str, text: str, names: str
) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(text)
    env = {
        **os.environ,
        "RUNBOOK_STORE_URL": store_url,
        "RUNBOOK_CATALOGUE": str(path),
        "RUNBOOK_INTAKE_TOKENS": json.dumps(TOKENS),
    }

    done = subprocess.run(
        [sys.executable, "-m", "intake", "--port", "0", "--no-dispatch"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("intake: ") and names in lines[0] and str(path) in lines[0]
    assert done.stdout == ""
