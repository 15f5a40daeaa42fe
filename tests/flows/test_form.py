"""The hand-start form: `service` a choice of the catalogue's services, then severity, summary, the id of an
existing incident, then the guide's timings; the server refuses a service outside the catalogue; Chromium
shows the choices without switching any union."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows import catalogue
from flows.form import apply, catalogue_services, service_choices, with_service_choices
from flows.service_down import service_down
from sandbox.testing_prefect import post_until_not_503, prefect_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
SERVICES = ["payments", "emotionscare"]  # catalogue order, not alphabetical


@pytest.fixture
def two_services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """RUNBOOK_CATALOGUE naming a catalogue of two services; their names, in its order."""
    entries = "".join(
        f"  - name: {name}\n"
        "    team: t\n"
        f"    kubernetes: {{namespace: ns-{name}, deployment: {name}}}\n"
        f"    health: {{base_url: 'https://{name}.example'}}\n"
        for name in SERVICES
    )
    path = tmp_path / "catalogue.yaml"
    path.write_text("services:\n" + entries, encoding="utf-8")
    monkeypatch.setenv("RUNBOOK_CATALOGUE", str(path))
    return catalogue_services()


def _schema(services: list[str]) -> dict[str, Any]:
    deployment = with_service_choices(service_down.to_deployment(name="form"), services)
    return deployment._parameter_openapi_schema.model_dump()


# --- the schema -------------------------------------------------------------------------------------------


def test_the_catalogue_is_read_in_its_order(two_services: list[str]) -> None:
    assert two_services == SERVICES


def test_the_form_leads_with_service_severity_summary_and_incident_id() -> None:
    schema = _schema(["payments", "emotionscare", "search"])
    props = schema["properties"]
    first = sorted(props, key=lambda name: props[name]["position"])[:5]
    assert first == ["service", "severity", "summary", "incident_id", "rollback_window_min"]
    assert props["service"]["enum"] == ["payments", "emotionscare", "search"]  # catalogue order
    assert props["service"]["default"] == "payments" and props["service"]["type"] == "string"
    assert props["service"]["description"]
    assert props["severity"]["$ref"] == "#/definitions/Severity"
    assert schema["definitions"]["Severity"]["enum"] == ["P1", "P2", "P3", "P4"]
    assert props["summary"]["maxLength"] == 500 and props["incident_id"]["type"] == "string"
    # no union to switch: the whole IncidentRef is for Python callers only
    assert "incident" not in props and "IncidentRef" not in schema["definitions"]
    assert not [p for p, spec in props.items() if "anyOf" in spec and p in first]


def test_a_flow_without_a_service_parameter_keeps_its_form() -> None:
    entry = next(e for e in catalogue.entries() if e.name == "postmortem")
    schema = entry.to_deployment(["payments"])._parameter_openapi_schema.model_dump()
    assert "service" not in schema["properties"] and "incident_id" in schema["properties"]
    with pytest.raises(ValueError, match="no services"):
        service_choices(schema, [])


def test_every_deployment_that_takes_a_service_gets_the_choices() -> None:
    with_service = {
        e.name
        for e in catalogue.entries()
        if "service" in e.to_deployment(SERVICES)._parameter_openapi_schema.properties
    }
    assert with_service == {
        "respond",
        "service-down",
        "database-lost",
        "resource-exhaustion",
        "external-api-failure",
        "error-rate-spike",
        "performance-degradation",
        "feature-broken",
        "drill-database-failure",  # the drills take the service they drill
        "drill-high-error-rate",
        "drill-performance-degradation",
        "drill-external-api-failure",
    }


# --- the server refuses what is not in the catalogue ------------------------------------------------------


def _create_run(api: str, deployment_id: Any, parameters: dict[str, Any]) -> httpx.Response:
    # the run is created cancelled: nothing serves this deployment, and nothing should ever pick it up
    body = {"parameters": parameters, "state": {"type": "CANCELLED", "name": "Cancelled"}}
    return post_until_not_503(f"{api}/deployments/{deployment_id}/create_flow_run", body)


def test_the_server_refuses_a_service_outside_the_catalogue(
    prefect_api: str, two_services: list[str]
) -> None:
    entry = next(e for e in catalogue.entries() if e.name == "service-down")
    deployment = entry.to_deployment(two_services)
    deployment.name = "form-served"  # not the name flows.serve uses: no runner of another test takes it
    deployment_id = deployment.apply()

    refused = _create_run(prefect_api, deployment_id, {"service": "nope", "summary": "down"})
    assert refused.status_code == 409, refused.text
    assert "service" in refused.text and "'nope' is not one of ['payments', 'emotionscare']" in refused.text

    accepted = _create_run(prefect_api, deployment_id, {"service": "emotionscare", "severity": "P2"})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["parameters"] == {"service": "emotionscare", "severity": "P2"}
    by_id = _create_run(prefect_api, deployment_id, {"incident_id": "0" * 32})  # what intake sends
    assert by_id.status_code == 201, by_id.text


def test_apply_gives_deployments_registered_by_prefect_deploy_the_choices(
    prefect_api: str, two_services: list[str]
) -> None:
    unpatched = service_down.to_deployment(name="form-yaml", enforce_parameter_schema=True)
    deployment_id = unpatched.apply()  # what `prefect deploy` registers: the signature's schema
    assert apply(["service-down/form-yaml", "service-down/not-registered"], two_services) == [
        "service-down/form-yaml"
    ]
    stored = httpx.get(f"{prefect_api}/deployments/{deployment_id}", timeout=30).json()
    props = stored["parameter_openapi_schema"]["properties"]
    assert props["service"]["enum"] == SERVICES and "incident" not in props
    assert _create_run(prefect_api, deployment_id, {"service": "nope"}).status_code == 409


# --- the form in Chromium ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_server(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` with its UI (the session's harness serves the API only); its base URL.

    On the session's PostgreSQL, as in production: on SQLite, Prefect's own services writing beside the
    form's submit can hold the database lock, and the server answers the run's creation 503 ("database
    is locked"), which the UI shows as an error toast, not as a scheduled run (one CI run in six)."""
    home = tmp_path_factory.mktemp("prefect-form-ui")
    dsn = pg_server.create_database("prefect_form_ui").replace("postgresql://", "postgresql+asyncpg://", 1)
    env = {"PREFECT_API_LOG_RETRYABLE_ERRORS": "true"}  # a 503's cause in server.log
    with prefect_server(home, database_url=dsn, extra_env=env, startup_timeout_s=240) as base:
        yield base


@pytest.mark.browser
def test_the_custom_run_form_offers_the_catalogue_services(ui_server: str, two_services: list[str]) -> None:
    from playwright.sync_api import expect, sync_playwright
    from prefect.settings import PREFECT_API_URL, temporary_settings

    entry = next(e for e in catalogue.entries() if e.name == "respond")
    with temporary_settings(updates={PREFECT_API_URL: f"{ui_server}/api"}):
        deployment_id = entry.to_deployment(two_services).apply()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)  # its 5 s default is short on a busy 2-core machine
            page.goto(f"{ui_server}/deployments/deployment/{deployment_id}/run", wait_until="networkidle")
            # Custom run: what a person knows comes first, each field shown as is (no union to switch)
            expect(
                page.get_by_text("the service in trouble (in the form: one of the catalogue's services)")
            ).to_be_visible()
            service = page.locator("button.p-select-button__control").first
            expect(service).to_have_text("payments")  # the catalogue's first service
            severity = page.locator("button.p-select-button__control").nth(1)
            expect(severity).to_have_text("P1")
            summary = page.get_by_text("summary (Optional)", exact=True).locator(
                "xpath=following::textarea[1]"
            )
            expect(summary).to_be_visible()
            expect(page.get_by_text("incident_id (Optional)", exact=True)).to_be_visible()
            service.press("ArrowDown")  # opens the list (a click only focuses it in headless Chromium)
            options = page.get_by_role("option")
            expect(options).to_have_text(SERVICES)  # the catalogue's services, in its order, and only them
            page.screenshot(path=str(ARTIFACTS / "ui-form-service-choices.png"), full_page=True)
            options.filter(has_text="emotionscare").click()
            expect(service).to_have_text("emotionscare")
            severity.press("ArrowDown")
            expect(page.get_by_role("option")).to_have_text(["P1", "P2", "P3", "P4"])
            page.get_by_role("option").filter(has_text="P2").click()
            expect(severity).to_have_text("P2")
            summary.fill("checkout returns 500")
            page.screenshot(path=str(ARTIFACTS / "ui-form-respond.png"), full_page=True)
            page.get_by_role("button", name="Submit").click()
            try:
                expect(page.locator("p", has_text="scheduled to start").first).to_be_visible()
            except AssertionError:
                page.screenshot(path=str(ARTIFACTS / "ui-form-submitted.png"), full_page=True)
                raise AssertionError(
                    "no 'scheduled to start' after Submit; the page said: "
                    + page.locator("body").inner_text()[-1500:]
                ) from None
        finally:
            browser.close()

    runs = httpx.post(f"{ui_server}/api/flow_runs/filter", json={}, timeout=30).json()
    [run] = [r for r in runs if r["deployment_id"] == str(deployment_id)]
    sent = {k: run["parameters"].get(k) for k in ("service", "severity", "summary")}
    assert sent == {"service": "emotionscare", "severity": "P2", "summary": "checkout returns 500"}
