"""`prefect deploy --all` registers every deployment of prefect.yaml, with typed, described forms."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from flows import catalogue
from sandbox.testing_prefect import post_until_not_503

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


@pytest.fixture(scope="module")
def deployed(prefect_api: str) -> dict[str, dict]:
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "RUNBOOK_PROJECT_DIR": str(ROOT)}
    subprocess.run(
        [PREFECT, "--no-prompt", "work-pool", "create", "runbooks", "--type", "process", "--overwrite"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    done = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--all"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    form = [sys.executable, "-m", "flows.form", "apply"]  # the service choices (flows/form.py)
    done = subprocess.run(form, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    n = len(catalogue.entries())
    assert done.returncode == 0 and f"on {n} of {n} deployments" in done.stdout, (
        done.stdout + done.stderr[-3000:]
    )
    response = httpx.post(f"{prefect_api}/deployments/filter", json={}, timeout=30)
    response.raise_for_status()
    return {d["name"]: d for d in response.json()}


def test_every_prefect_yaml_deployment_is_registered(deployed: dict[str, dict]) -> None:
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    assert {d["name"] for d in declared} <= set(deployed)
    for d in declared:
        got = deployed[d["name"]]
        assert got["entrypoint"] == d["entrypoint"]
        assert got["description"].split()[0] == d["description"].split()[0]
        assert got["work_pool_name"] == "runbooks"
        assert got["enforce_parameter_schema"] is True


def test_catalogue_matches_prefect_yaml() -> None:
    declared = {
        d["name"]: d["entrypoint"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    }
    listed = {e.name: e.entrypoint for e in catalogue.entries()}
    assert listed == {k: v for k, v in declared.items() if k in listed}
    assert set(listed) <= set(declared)


def test_service_down_form_has_descriptions_bounds_and_the_severity_enum(deployed: dict[str, dict]) -> None:
    schema = deployed["service-down"]["parameter_openapi_schema"]
    props = schema["properties"]
    assert props["rollback_window_min"]["default"] == 15
    assert props["rollback_window_min"]["minimum"] == 1
    assert "15" in props["rollback_window_min"]["description"]
    assert props["settle_s"]["default"] == 30.0
    assert props["dry_run"]["type"] == "boolean" and props["dry_run"]["description"]
    assert schema["definitions"]["Severity"]["enum"] == ["P1", "P2", "P3", "P4"]
    assert props["severity"]["$ref"].endswith("/Severity")
    assert props["service"]["enum"] == ["emotionscare"]  # the settings' single service
    assert "incident" not in props  # Python callers only: the form has its fields flat


@pytest.mark.parametrize("name", [e.name for e in catalogue.entries()])
def test_every_parameter_is_described(deployed: dict[str, dict], name: str) -> None:
    props = deployed[name]["parameter_openapi_schema"]["properties"]
    assert props, name
    missing = [p for p, spec in props.items() if not spec.get("description")]
    assert not missing, f"{name}: parameters without a description in the UI form: {missing}"


def test_server_rejects_a_bad_parameter_with_the_field_named(
    deployed: dict[str, dict], prefect_api: str
) -> None:
    dep = deployed["service-down"]
    response = post_until_not_503(
        f"{prefect_api}/deployments/{dep['id']}/create_flow_run", {"parameters": {"severity": "P9"}}
    )
    assert response.status_code == 409
    assert "P9" in response.text
