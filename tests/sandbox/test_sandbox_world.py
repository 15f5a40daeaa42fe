"""The world as a whole: start cost, the settings it hands the runbooks, reset between tests, stop."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from sandbox_support import Kube

from runbook.settings import load_settings
from sandbox.postgres import EmbeddedPostgres
from sandbox.testing import TEST_WORLD, running_world
from sandbox.world import BASE_ENV, GOOD_IMAGE, World

START_BUDGET_S = 5.0


def test_a_world_with_its_own_postgresql_starts_within_budget_and_stops_cleanly() -> None:
    began = time.perf_counter()
    world = World(**TEST_WORLD).start()
    elapsed = time.perf_counter() - began
    ports = {world.postgres.port, urlsplit(world.service.url).port, urlsplit(world.sentry.url).port}
    try:
        assert httpx.get(world.service.url + "/api/health").status_code == 200
    finally:
        world.stop()
    print(f"\nworld start with its own PostgreSQL (initdb included): {elapsed:.2f}s")
    assert elapsed < START_BUDGET_S
    assert not world.postgres.running and not world.data_dir.exists()
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_world_on_a_shared_server_starts_within_budget(pg_server: EmbeddedPostgres) -> None:
    began = time.perf_counter()
    with running_world(postgres=pg_server) as world:
        elapsed = time.perf_counter() - began
        assert httpx.get(world.service.url + "/health").status_code == 200
        name = world.db_name
    print(f"\nworld start on the session's PostgreSQL: {elapsed:.2f}s")
    assert elapsed < START_BUDGET_S
    import psycopg

    with psycopg.connect(pg_server.dsn()) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None


def test_settings_env_loads_into_the_runbooks_settings(sandbox_world: World) -> None:
    settings = load_settings()  # sandbox_world put settings_env() into os.environ
    assert settings.environment == "sandbox"
    assert str(settings.service.base_url).rstrip("/") == sandbox_world.service.url
    assert settings.kubernetes.namespace == "prod" and settings.kubernetes.deployment == "emotionscare"
    assert settings.database.dsn is not None and settings.database.dsn.get_secret_value() == sandbox_world.dsn
    assert [a.name for a in settings.external_apis] == ["hume", "openai", "spotify"]
    assert settings.external_apis[0].health_url == sandbox_world.apis.health_url("hume")
    assert settings.sentry.token is not None and settings.slack.token is not None


def test_reset_returns_a_used_world_to_the_baseline(sandbox_world: World, kube: Kube) -> None:
    sandbox_world.inject("bad-deploy", mode="crash")
    sandbox_world.inject("db-pool-stale")
    kube.scale(3)
    kube.set_env("FEATURE_AI_COACH_ENABLED", "false")
    httpx.post(sandbox_world.service.url + "/api/notifications", json={"type": "maintenance"})
    began = time.perf_counter()
    sandbox_world.reset()
    print(f"\nreset of a used world: {time.perf_counter() - began:.2f}s")
    container = kube.deployment().spec.template.spec.containers[0]
    assert container.image == GOOD_IMAGE
    assert {e.name: e.value for e in container.env} == BASE_ENV
    assert kube.deployment().spec.replicas == 2
    assert sandbox_world.active_faults() == [] and sandbox_world.service.notifications == []
    assert httpx.get(sandbox_world.service.url + "/api/health").status_code == 200
    assert sandbox_world.sentry.issues() == []


def test_settings_env_before_start_is_an_error() -> None:
    world = World()
    try:
        with pytest.raises(RuntimeError, match="start"):
            world.settings_env()
    finally:
        world.stop()
    assert not world.data_dir.exists()
