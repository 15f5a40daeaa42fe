"""The service under care follows the live Deployment, seen through httpx, the Kubernetes client and psycopg."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from sandbox_support import Kube, reset_pool, status_of

from sandbox.testing import wait_for
from sandbox.world import GOOD_IMAGE, SENTRY_TOKEN, World


def test_healthy_world_answers_health_and_api_health_with_details(sandbox_world: World, kube: Kube) -> None:
    url = sandbox_world.service.url
    assert httpx.get(url + "/health").json()["status"] == "ok"
    body = httpx.get(url + "/api/health").json()
    assert body["status"] == "ok"
    assert body["image"] == GOOD_IMAGE
    assert body["revision"] == str(kube.revision()) == "2"
    assert body["database"]["ok"] is True
    assert body["database"]["pool_size"] == 5
    assert body["features"] == {"music": True, "coach": True, "playlists": True, "journal": True}
    assert kube.deployment().status.ready_replicas == 2


def test_health_refuses_connections_while_no_pod_is_ready_and_comes_back(
    sandbox_world: World, kube: Kube
) -> None:
    url = sandbox_world.service.url
    kube.scale(0)
    wait_for(lambda: status_of(url + "/health") == 0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health")
    kube.scale(2)
    wait_for(lambda: status_of(url + "/health") == 200)
    assert sandbox_world.service.port == int(url.rsplit(":", 1)[1])  # the same port


def test_a_feature_flag_set_to_false_disables_the_feature(sandbox_world: World, kube: Kube) -> None:
    url = sandbox_world.service.url
    assert httpx.post(url + "/api/music/generate", json={"prompt": "rain"}).status_code == 202
    kube.set_env("FEATURE_MUSIC_GENERATION_ENABLED", "false")
    wait_for(lambda: status_of(url + "/api/music/generate", "POST", json={}) == 503)
    answer = httpx.post(url + "/api/music/generate", json={}).json()
    assert answer["error"] == "feature_disabled" and answer["feature"] == "music"
    assert httpx.get(url + "/api/health").json()["features"]["music"] is False
    kube.set_env("FEATURE_MUSIC_GENERATION_ENABLED", "true")
    wait_for(lambda: status_of(url + "/api/music/generate", "POST", json={}) == 202)


def test_notifications_are_recorded_and_bad_ones_refused(sandbox_world: World) -> None:
    url = sandbox_world.service.url
    created = httpx.post(url + "/api/notifications", json={"type": "maintenance", "feature": "music"})
    assert created.status_code == 201
    assert httpx.get(url + "/api/notifications").json()["notifications"][0]["feature"] == "music"
    bad = httpx.post(url + "/api/notifications", json={"feature": "music"})
    assert bad.status_code == 400 and bad.json()["field"] == "type"
    assert httpx.post(url + "/api/notifications", content=b"not json").status_code == 400


def test_journal_entries_live_in_postgresql(sandbox_world: World) -> None:
    url = sandbox_world.service.url
    created = httpx.post(url + "/api/journal", json={"body": "calm morning", "mood": "calm", "user_id": "u1"})
    assert created.status_code == 201
    with psycopg.connect(sandbox_world.dsn) as conn:
        row = conn.execute(
            "SELECT user_id, mood, body FROM journal_entries WHERE id = %s", (created.json()["id"],)
        )
        assert row.fetchone() == ("u1", "calm", "calm morning")
    entries = httpx.get(url + "/api/journal").json()["entries"]
    assert entries[0]["body"] == "calm morning"
    assert httpx.get(url + "/api/journal?limit=0").status_code == 400
    assert httpx.post(url + "/api/journal", json={"body": ""}).json()["field"] == "body"


def test_the_pool_reset_needs_the_admin_token(sandbox_world: World) -> None:
    assert reset_pool(sandbox_world, token=None).status_code == 401
    assert reset_pool(sandbox_world, token="wrong").status_code == 403
    generation = sandbox_world.service.db.generation
    answer = reset_pool(sandbox_world)
    assert answer.status_code == 200 and answer.json()["database"] == "ok"
    assert sandbox_world.service.db.generation == generation + 1


def test_a_new_db_pool_size_rolls_out_and_builds_a_new_pool(sandbox_world: World, kube: Kube) -> None:
    kube.set_env("DB_POOL_SIZE", "10")
    wait_for(
        lambda: httpx.get(sandbox_world.service.url + "/api/health").json()["database"]["pool_size"] == 10
    )
    assert kube.revision() == 3


def test_metrics_give_requests_errors_and_p95_as_json_and_prometheus_text(sandbox_world: World) -> None:
    url = sandbox_world.service.url
    codes = sandbox_world.traffic.burst(8)
    assert all(200 <= c < 300 for c in codes), codes
    assert httpx.get(url + "/api/health").status_code == 200  # probes stay out of the metrics
    metrics = httpx.get(url + "/metrics", params={"window_s": 60}).json()
    assert metrics["requests"] == 8 and metrics["errors"] == 0 and metrics["error_rate_pct"] == 0
    assert metrics["p95_ms"] > 0
    assert set(metrics["routes"]) >= {"GET /api/journal", "POST /api/journal", "POST /api/coach"}
    text = httpx.get(url + "/metrics", headers={"Accept": "text/plain"}).text
    assert 'emotionscare_http_requests_total{endpoint="/api/journal",method="GET",status="200"} 3' in text
    assert "emotionscare_http_p95_latency_seconds" in text
    assert httpx.get(url + "/metrics", params={"window_s": "x"}).status_code == 400


def test_errors_reach_the_pod_logs_and_sentry(sandbox_world: World, kube: Kube) -> None:
    sandbox_world.inject("error-rate", "100")
    assert httpx.get(sandbox_world.service.url + "/api/journal").status_code == 500
    logs = "".join(kube.core.read_namespaced_pod_log(p.metadata.name, "prod") for p in kube.pods())
    assert (
        "ERROR GET /api/journal 500 - TypeError: Cannot read properties of null (reading 'preferences')"
        in logs
    )
    assert "at getPreferences (/app/src/users/profile.ts:58:11)" in logs
    issues = httpx.get(
        f"{sandbox_world.sentry.url}/api/0/projects/emotionscare/emotionscare/issues/",
        headers={"Authorization": f"Bearer {SENTRY_TOKEN}"},
    ).json()
    assert issues[0]["title"].startswith("TypeError: Cannot read properties of null")
