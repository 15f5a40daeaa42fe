"""The outage faults: each dependency refuses, times out or answers 5xx, and `clear` brings it back."""

from __future__ import annotations

import httpx
import pytest

from sandbox.faults import FaultConflict
from sandbox.faults.gate import Gate
from sandbox.faults.outages import attach_prefect


def _status(url: str, timeout_s: float = 2.0) -> int | str:
    try:
        return httpx.get(url, timeout=timeout_s).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def test_kubernetes_api_modes_and_clear(sandbox_world) -> None:
    world = sandbox_world
    url = world.k8s.url + "/apis/apps/v1/namespaces/prod/deployments/emotionscare"
    assert _status(url) == 200
    world.inject("k8s-api-down", mode="5xx")
    assert _status(url) == 503
    world.inject("k8s-api-down", mode="refuse")
    assert _status(url) in ("RemoteProtocolError", "ReadError", "ConnectError")
    world.clear("k8s-api-down")
    assert _status(url) == 200
    world.inject("k8s-api-down", mode="timeout", delay_s=5)
    assert _status(url, timeout_s=0.3) == "ReadTimeout"
    world.clear()
    assert _status(url) == 200


@pytest.mark.parametrize("fault", ["slack-down", "pagerduty-down", "sentry-down"])
def test_stand_in_modes_and_clear(sandbox_world, fault: str) -> None:
    world = sandbox_world
    standin = {"slack-down": world.slack, "pagerduty-down": world.pagerduty, "sentry-down": world.sentry}[
        fault
    ]
    url = standin.url + "/"
    healthy = _status(url)
    world.inject(fault, mode="refuse")
    assert _status(url) == "ConnectError"
    world.inject(fault, mode="5xx")
    assert _status(url) == 503
    world.inject(fault, mode="timeout", delay_s=2)
    assert _status(url, timeout_s=0.3) == "ReadTimeout"
    world.clear(fault)
    assert _status(url) == healthy


def test_store_down_needs_a_postgres_store(sandbox_world) -> None:
    world = sandbox_world
    with pytest.raises(FaultConflict, match="postgres_store"):
        world.inject("store-down")


def test_prefect_api_behind_a_gate(sandbox_world, prefect_api: str) -> None:
    world = sandbox_world
    with pytest.raises(FaultConflict, match="attach_prefect"):
        world.inject("prefect-api-down")
    gate = Gate(prefect_api).start()
    detach = attach_prefect(world, gate)
    try:
        assert _status(gate.url + "/health") == 200
        world.inject("prefect-api-down", mode="5xx")
        assert _status(gate.url + "/health") == 503
        world.inject("prefect-api-down", mode="refuse")
        assert _status(gate.url + "/health") == "ConnectError"
        world.inject("prefect-api-down", mode="timeout")
        assert _status(gate.url + "/health", timeout_s=0.3) == "ReadTimeout"
        world.clear("prefect-api-down")
        assert _status(gate.url + "/health") == 200
    finally:
        detach()
        gate.stop()
