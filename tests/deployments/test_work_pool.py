"""The Kubernetes work pool as docs/scale-out.md creates it, on a real Prefect server.

Usage: `.venv/bin/python -m pytest tests/deployments/test_work_pool.py -q` (uses the session's Prefect
test server). Runs the documented commands: `prefect work-pool create runbooks-k8s --type kubernetes
--base-job-template deployments/work-pool-kubernetes.json`, then `prefect deploy -n <name> --pool
runbooks-k8s --job-variable image=...` (a single deploy: `prefect deploy --all` ignores `--pool`), and
reads back what the server stored. The server validates the template (every `{{ placeholder }}`
declared) and the job variables against the template's schema.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "runbooks-k8s"
TEMPLATE = ROOT / "deployments" / "work-pool-kubernetes.json"


def image_project_dir() -> str:
    """Where the image keeps the flow code (deployments/Dockerfile's RUNBOOK_PROJECT_DIR)."""
    match = re.search(
        r"^\s+RUNBOOK_PROJECT_DIR=(\S+)$", (ROOT / "deployments" / "Dockerfile").read_text(), re.MULTILINE
    )
    assert match is not None
    return match.group(1)


def _prefect(args: list[str], api: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": api, "RUNBOOK_PROJECT_DIR": str(ROOT), **env_vars}
    return subprocess.run(
        [PREFECT, "--no-prompt", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def pool(prefect_api: str) -> Iterator[dict[str, Any]]:
    done = _prefect(
        [
            "work-pool",
            "create",
            POOL,
            "--type",
            "kubernetes",
            "--base-job-template",
            str(TEMPLATE),
            "--overwrite",
        ],
        prefect_api,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    response = httpx.get(f"{prefect_api}/work_pools/{POOL}", timeout=30)
    response.raise_for_status()
    try:
        yield response.json()
    finally:
        httpx.delete(f"{prefect_api}/work_pools/{POOL}", timeout=30)


def test_the_pool_is_created_from_the_template(pool: dict[str, Any]) -> None:
    assert pool["type"] == "kubernetes"
    assert pool["base_job_template"] == json.loads(TEMPLATE.read_text(encoding="utf-8"))


def test_the_server_refuses_a_template_with_an_undeclared_placeholder(prefect_api: str) -> None:
    broken = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    del broken["variables"]["properties"]["service_account_name"]
    response = httpx.post(
        f"{prefect_api}/work_pools/",
        json={"name": "runbooks-k8s-broken", "type": "kubernetes", "base_job_template": broken},
        timeout=30,
    )
    assert response.status_code == 422
    assert "service_account_name" in response.text


def test_a_runbook_deploys_to_the_pool_with_the_image_job_variable(
    pool: dict[str, Any], prefect_api: str
) -> None:
    name = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))["deployments"][0]["name"]
    image = pool["base_job_template"]["variables"]["properties"]["image"]["default"]
    # as docs/scale-out.md says: the flow code's path inside the image, resolved at deploy time
    project_dir = image_project_dir()
    done = _prefect(
        ["deploy", "-n", name, "--pool", POOL, "--job-variable", f"image={image}"],
        prefect_api,
        RUNBOOK_PROJECT_DIR=project_dir,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    response = httpx.post(
        f"{prefect_api}/deployments/filter", json={"deployments": {"name": {"any_": [name]}}}, timeout=30
    )
    response.raise_for_status()
    (deployment,) = response.json()
    try:
        assert deployment["work_pool_name"] == POOL
        assert deployment["job_variables"] == {"image": image}
        # prefect.yaml's pull step `{{ $RUNBOOK_PROJECT_DIR }}` is resolved by `prefect deploy`
        step = deployment["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
        assert step["directory"] == project_dir == "/opt/incident-runbooks"
    finally:
        # leave the session's server as prefect.yaml describes it (tests/flows deploys it again)
        httpx.delete(f"{prefect_api}/deployments/{deployment['id']}", timeout=30)


def test_the_runbooks_service_account_and_namespace_are_the_defaults(pool: dict[str, Any]) -> None:
    props = pool["base_job_template"]["variables"]["properties"]
    rbac = [d for d in yaml.safe_load_all((ROOT / "deployments" / "runbooks-rbac.yaml").read_text()) if d]
    account = next(d for d in rbac if d["kind"] == "ServiceAccount")
    assert props["service_account_name"]["default"] == account["metadata"]["name"]
    assert props["namespace"]["default"] == account["metadata"]["namespace"]
    kustomization = yaml.safe_load((ROOT / "deployments" / "kustomization.yaml").read_text())
    image = kustomization["images"][0]
    assert props["image"]["default"] == f"{image['newName']}:{image['newTag']}"
    assert props["backoff_limit"]["default"] == 0  # a runbook is never re-run by Kubernetes behind Prefect
