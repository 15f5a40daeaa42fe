"""The control API a running world serves to `python -m sandbox fault|clear|status` and to drills."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.control import CONTROL_VAR, ControlServer, control_url
from sandbox.world import World


@pytest.fixture
def control(sandbox_world: World) -> Iterator[str]:
    server = ControlServer(sandbox_world).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_inject_by_path_and_by_body_then_list_and_clear(control: str, sandbox_world: World) -> None:
    answer = httpx.post(control + "/faults/bad-deploy", json={"ago_min": 3})
    assert answer.status_code == 200
    assert answer.json()["status"]["deployment"]["image"].endswith("v1.2.0-broken")
    assert httpx.get(sandbox_world.service.url + "/api/health").status_code == 500
    # the drills' ControlApiTarget: POST /faults {"name", "arg"}, GET /faults, POST /faults/clear
    assert httpx.post(control + "/faults", json={"name": "api-down", "arg": "hume"}).status_code == 200
    assert httpx.get(control + "/faults").json()["active"] == ["bad-deploy", "api-down"]
    assert httpx.delete(control + "/faults/api-down").json()["message"] == "api-down: hume up again"
    cleared = httpx.post(control + "/faults/clear").json()
    assert cleared["status"]["faults"] == {}
    assert httpx.get(sandbox_world.service.url + "/api/health").status_code == 200


def test_errors_answer_with_the_reason(control: str) -> None:
    unknown = httpx.post(control + "/faults/nope")
    assert unknown.status_code == 404 and "bad-deploy" in unknown.json()["valid"]
    bad = httpx.post(control + "/faults/error-rate", json={"arg": "150"})
    assert bad.status_code == 422 and bad.json()["error"] == "error-rate: pct must be <= 100 (got '150')"
    assert httpx.post(control + "/faults/db-down").status_code == 200
    conflict = httpx.post(control + "/faults/journal-broken")
    assert conflict.status_code == 409 and "db-down" in conflict.json()["error"]
    assert httpx.post(control + "/faults/db-down", content=b"[1]").status_code == 400
    assert httpx.post(control + "/faults", json={"arg": "x"}).status_code == 422


def test_control_url_finds_a_running_sandbox_and_none_otherwise(
    control: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONTROL_VAR, raising=False)
    env_file = tmp_path / "sandbox.env"
    assert control_url(env_file) is None
    env_file.write_text(f"export {CONTROL_VAR}={control}\n")
    assert control_url(env_file) == control
    env_file.write_text(f"export {CONTROL_VAR}=http://127.0.0.1:9\n")  # nothing listens there
    assert control_url(env_file) is None
