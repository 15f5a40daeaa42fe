"""`prefect deploy --all` registers the drill deployments with their monthly schedules (read back from the API)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandbox.testing_prefect import post_until_not_503

ROOT = Path(__file__).resolve().parents[3]
PREFECT = str(Path(sys.executable).with_name("prefect"))
DRILLS = (
    "drill-database-failure",
    "drill-high-error-rate",
    "drill-performance-degradation",
    "drill-external-api-failure",
    "drill-monthly",
    "postmortem",
)


@pytest.fixture(scope="module")
def deployed(prefect_api: str) -> dict[str, dict]:
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "RUNBOOK_PROJECT_DIR": str(ROOT)}
    for command in (
        ["work-pool", "create", "runbooks", "--type", "process", "--overwrite"],
        ["deploy", "--all"],
    ):
        done = subprocess.run(
            [PREFECT, "--no-prompt", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    response = httpx.post(f"{prefect_api}/deployments/filter", json={}, timeout=30)
    response.raise_for_status()
    return {d["name"]: d for d in response.json()}


def test_the_monthly_drill_has_its_cron_schedules_in_a_set_timezone(deployed: dict[str, dict]) -> None:
    schedules = deployed["drill-monthly"]["schedules"]
    got = sorted(
        (s["schedule"]["cron"], s["schedule"]["timezone"], s["active"], s["parameters"]["plan"])
        for s in schedules
    )
    assert got == [
        ("0 10 1 * *", "Europe/Paris", False, "all"),
        ("0 10 1 * *", "Europe/Paris", False, "quarterly"),
        ("0 10 1 * *", "Europe/Paris", True, "rotate"),
    ]
    assert deployed["drill-monthly"]["parameters"] == {"plan": "rotate"}


def test_the_active_schedule_creates_a_run_on_the_first_of_the_month_at_ten_in_paris(
    deployed: dict[str, dict], prefect_api: str
) -> None:
    dep = deployed["drill-monthly"]
    response = httpx.post(
        f"{prefect_api}/deployments/{dep['id']}/schedule",
        json={"min_runs": 2, "max_runs": 2, "end_time": "2099-01-01T00:00:00Z"},
        timeout=30,
    )
    response.raise_for_status()
    runs = httpx.post(
        f"{prefect_api}/flow_runs/filter",
        json={"flow_runs": {"deployment_id": {"any_": [dep["id"]]}}},
        timeout=30,
    ).json()
    scheduled = [r for r in runs if r["state"]["type"] == "SCHEDULED"]
    assert scheduled, runs
    for run in scheduled:
        assert run["parameters"] == {"plan": "rotate"}  # the inactive schedules create nothing
        start = run["expected_start_time"]
        # 10:00 in Paris is 09:00Z in winter, 08:00Z in summer; always the 1st of a month
        assert start[8:10] == "01" and start[11:16] in ("08:00", "09:00"), start


@pytest.mark.parametrize("name", DRILLS)
def test_every_drill_deployment_is_registered_with_a_described_form(
    deployed: dict[str, dict], name: str
) -> None:
    dep = deployed[name]
    assert dep["work_pool_name"] == "runbooks" and dep["enforce_parameter_schema"] is True
    props = dep["parameter_openapi_schema"]["properties"]
    assert all(spec.get("description") for spec in props.values()), props


def test_a_person_can_pick_the_path_and_target_in_the_form(deployed: dict[str, dict]) -> None:
    props = deployed["drill-high-error-rate"]["parameter_openapi_schema"]["properties"]
    assert props["via"]["enum"] == ["runbook", "respond", "intake"]
    assert props["target"]["default"] == "sandbox"
    assert props["allow_production"]["default"] is False
    plan = deployed["drill-monthly"]["parameter_openapi_schema"]["properties"]["plan"]
    assert plan["enum"] == ["rotate", "quarterly", "all"]


def test_the_server_refuses_an_unknown_plan_with_the_field_named(
    deployed: dict[str, dict], prefect_api: str
) -> None:
    response = post_until_not_503(
        f"{prefect_api}/deployments/{deployed['drill-monthly']['id']}/create_flow_run",
        {"parameters": {"plan": "weekly"}},
    )
    assert response.status_code == 409 and "weekly" in response.text
