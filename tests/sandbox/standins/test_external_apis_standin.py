"""Hume, OpenAI and Spotify stand-ins: health by the guide's URLs, modes (refused is a real refusal)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox.external_apis import API_NAMES, ExternalApis

HEALTH_PATHS = {"hume": "/health", "openai": "/v1/models", "spotify": "/v1/me"}


@pytest.mark.parametrize("name", API_NAMES)
def test_each_api_is_up_on_its_own_port_at_the_guides_health_url(
    http: httpx.Client, apis: ExternalApis, name: str
) -> None:
    assert apis.health_url(name) == apis.url(name) + HEALTH_PATHS[name]
    assert http.get(apis.health_url(name)).status_code == 200
    assert len({apis.url(n) for n in API_NAMES}) == 3
    assert apis.mode(name) == "up"


@pytest.mark.parametrize("name", API_NAMES)
def test_down_refused_is_a_real_connection_refusal_and_up_brings_it_back(
    http: httpx.Client, apis: ExternalApis, name: str, port_refuses
) -> None:
    url = apis.health_url(name)
    port = apis.api(name).server.port
    apis.set_mode(name, "down-refused")
    assert port_refuses(port)
    with pytest.raises(httpx.ConnectError):
        http.get(url)
    for other in API_NAMES:
        if other != name:
            assert http.get(apis.health_url(other)).status_code == 200  # only this API is down
    apis.set_mode(name, "up")
    assert apis.health_url(name) == url  # same port
    assert http.get(url).status_code == 200


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("hume", {"message": "Service Unavailable"}),
        (
            "openai",
            {
                "error": {
                    "message": "The server is overloaded or not ready yet.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
        ),
        ("spotify", {"error": {"status": 503, "message": "Service unavailable"}}),
    ],
)
def test_down_5xx_answers_503_in_the_apis_own_shape(
    http: httpx.Client, apis: ExternalApis, name: str, body: dict
) -> None:
    apis.set_mode(name, "down-5xx")
    response = http.get(apis.health_url(name))
    assert (response.status_code, response.json()) == (503, body)
    apis.set_mode(name, "up")
    assert http.get(apis.health_url(name)).status_code == 200


def test_slow_delays_every_answer(http: httpx.Client, apis: ExternalApis) -> None:
    apis.set_mode("openai", "slow", delay_s=0.3)
    started = time.monotonic()
    assert http.get(apis.health_url("openai"), timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        http.get(apis.health_url("openai"), timeout=0.1)
    apis.set_mode("openai", "up")
    started = time.monotonic()
    assert http.get(apis.health_url("openai")).status_code == 200
    assert time.monotonic() - started < 0.3


def test_bad_mode_or_name_is_refused(apis: ExternalApis) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        apis.set_mode("hume", "sideways")
    with pytest.raises(ValueError, match="unknown API"):
        apis.set_mode("myspace", "up")
    with pytest.raises(ValueError, match="unknown API"):
        ExternalApis(keys={"myspace": "k"})


def test_requests_are_recorded_per_api(http: httpx.Client, apis: ExternalApis) -> None:
    http.get(apis.health_url("hume"))
    http.get(apis.health_url("hume"))
    assert [r.path for r in apis.requests("hume")] == ["/health", "/health"]
    assert apis.requests("spotify") == []


def test_reset_brings_every_api_back_up(http: httpx.Client, apis: ExternalApis) -> None:
    apis.set_mode("hume", "down-refused")
    apis.set_mode("spotify", "down-5xx")
    apis.reset()
    assert [http.get(apis.health_url(n)).status_code for n in API_NAMES] == [200, 200, 200]
    assert [apis.mode(n) for n in API_NAMES] == ["up", "up", "up"]


# -- feature endpoints ------------------------------------------------------------------------------
def test_hume_batch_job_and_predictions(http: httpx.Client, apis: ExternalApis) -> None:
    base = apis.url("hume")
    job = http.post(f"{base}/v0/batch/jobs", json={"models": {"language": {}}, "text": ["I feel calm today"]})
    assert job.status_code == 200
    job_id = job.json()["job_id"]
    status = http.get(f"{base}/v0/batch/jobs/{job_id}").json()
    assert status["state"]["status"] == "COMPLETED"
    predictions = http.get(f"{base}/v0/batch/jobs/{job_id}/predictions").json()
    grouped = predictions[0]["results"]["predictions"][0]["models"]["language"]["grouped_predictions"]
    emotions = grouped[0]["predictions"][0]["emotions"]
    assert {e["name"] for e in emotions} >= {"Calmness", "Joy"}
    assert all(0 <= e["score"] <= 1 for e in emotions)
    assert http.post(f"{base}/v0/batch/jobs", json={}).status_code == 400
    assert http.get(f"{base}/v0/batch/jobs/nope").status_code == 404


def test_openai_chat_completion(http: httpx.Client, apis: ExternalApis) -> None:
    base = apis.url("openai")
    body = http.post(
        f"{base}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "calm music please"}]},
    ).json()
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"]["role"] == "assistant" and body["choices"][0]["message"]["content"]
    assert (
        body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )
    models = http.get(f"{base}/v1/models").json()
    assert models["object"] == "list" and {m["id"] for m in models["data"]} >= {"gpt-4o-mini"}
    missing = http.post(f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert missing.status_code == 400 and missing.json()["error"]["type"] == "invalid_request_error"


def test_spotify_recommendations(http: httpx.Client, apis: ExternalApis) -> None:
    base = apis.url("spotify")
    body = http.get(f"{base}/v1/recommendations", params={"seed_genres": "ambient,piano", "limit": 5}).json()
    assert len(body["tracks"]) == 5 and all(t["uri"].startswith("spotify:track:") for t in body["tracks"])
    assert [s["id"] for s in body["seeds"]] == ["ambient", "piano"]
    again = http.get(f"{base}/v1/recommendations", params={"seed_genres": "ambient,piano", "limit": 5}).json()
    assert again["tracks"] == body["tracks"]  # deterministic
    assert http.get(f"{base}/v1/recommendations").status_code == 400
    assert http.get(f"{base}/v1/me").json()["type"] == "user"


# -- keys -------------------------------------------------------------------------------------------
@pytest.fixture
def keyed() -> Iterator[ExternalApis]:
    stand_in = ExternalApis(
        keys={"hume": "hume-key", "openai": "sk-test-123456789", "spotify": "spot-tok"}
    ).start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


def test_keys_are_checked_as_each_api_does(http: httpx.Client, keyed: ExternalApis) -> None:
    openai = keyed.health_url("openai")
    assert http.get(openai, headers={"Authorization": "Bearer sk-test-123456789"}).status_code == 200
    missing = http.get(openai)
    assert missing.status_code == 401 and "didn't provide an API key" in missing.json()["error"]["message"]
    wrong = http.get(openai, headers={"Authorization": "Bearer sk-wrong-000000000"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-000000000" not in wrong.text  # the key is masked, as OpenAI does

    spotify = keyed.health_url("spotify")
    assert http.get(spotify).json() == {"error": {"status": 401, "message": "No token provided"}}
    assert http.get(spotify, headers={"Authorization": "Bearer nope"}).json()["error"]["message"] == (
        "Invalid access token"
    )
    assert http.get(spotify, headers={"Authorization": "Bearer spot-tok"}).status_code == 200

    jobs = keyed.url("hume") + "/v0/batch/jobs"
    assert http.get(keyed.health_url("hume")).status_code == 200  # /health is open
    assert http.post(jobs, json={"text": ["x"]}).status_code == 401
    assert http.post(jobs, json={"text": ["x"]}, headers={"X-Hume-Api-Key": "bad"}).status_code == 401
    assert http.post(jobs, json={"text": ["x"]}, headers={"X-Hume-Api-Key": "hume-key"}).status_code == 200


def test_stop_leaves_every_port_closed(port_refuses, server_threads) -> None:
    apis = ExternalApis().start()
    ports = [apis.api(n).server.port for n in API_NAMES]
    apis.set_mode("hume", "down-refused")  # a stopped API that was already down stops cleanly too
    apis.stop()
    assert all(port_refuses(p) for p in ports)
    assert [t for t in server_threads() if any(t.name.endswith(str(p)) for p in ports)] == []


def test_a_stopped_api_is_not_revived_by_set_mode_or_reset(port_refuses) -> None:
    apis = ExternalApis().start()
    port = apis.api("hume").server.port
    apis.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        apis.set_mode("hume", "up")
    apis.reset()
    assert port_refuses(port)
