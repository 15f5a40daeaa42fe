"""flows.serve: the catalogue as RunnerDeployments, `--exclude` for what another runner runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flows import catalogue
from flows.serve import deployments


def test_every_catalogue_entry_is_served_with_prefect_yaml_s_schedule_and_timezone() -> None:
    deps = {d.name: d for d in deployments()}
    assert set(deps) == {e.name for e in catalogue.entries()}
    monthly = deps["drill-monthly"]
    (schedule,) = monthly.schedules
    assert schedule.schedule.cron == "0 10 1 * *"
    assert schedule.schedule.timezone == "Europe/Paris"
    assert monthly.parameters == {"plan": "rotate"}
    assert all(d.enforce_parameter_schema for d in deps.values())
    assert not deps["service-down"].schedules


def test_exclude_leaves_respond_to_the_warm_runner() -> None:
    names = {d.name for d in deployments(exclude=["respond"])}
    assert "respond" not in names
    assert "service-down" in names


def test_an_unknown_exclusion_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"--exclude: unknown deployment\(s\) nope"):
        deployments(exclude=["nope"])
    done = subprocess.run(
        [sys.executable, "-m", "flows.serve", "--exclude", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip().splitlines()[-1].startswith("flows.serve: --exclude: unknown deployment(s) nope")
    )
