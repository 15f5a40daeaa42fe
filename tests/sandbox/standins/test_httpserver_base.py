"""The HTTP server base: routes, recording, a listener that really refuses, injected faults, clean stop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from sandbox.httpserver import HttpError, HttpServer, Request, Response


def _echo(request: Request) -> Response:
    return Response.json(
        {"params": request.params, "query": request.query, "body": request.body(), "method": request.method}
    )


def _boom(request: Request) -> Response:
    raise RuntimeError("handler bug")


def _teapot(request: Request) -> Response:
    raise HttpError(418, {"detail": "short and stout"}, {"X-Why": "tea"})


@pytest.fixture
def server() -> Iterator[HttpServer]:
    srv = HttpServer(name="t")
    srv.route("GET", "/items/{item_id}/", _echo)
    srv.route("POST", "/items", _echo)
    srv.route("GET", "/boom", _boom)
    srv.route("GET", "/teapot", _teapot)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_routes_bind_path_params_with_or_without_trailing_slash(server: HttpServer) -> None:
    for path in ("/items/42/", "/items/42"):
        body = httpx.get(server.url + path, params={"a": "1"}, timeout=2).json()
        assert body["params"] == {"item_id": "42"}
        assert body["query"] == {"a": ["1"]}


def test_unknown_path_is_404_and_wrong_method_is_405(server: HttpServer) -> None:
    missing = httpx.get(server.url + "/nope", timeout=2)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = httpx.delete(server.url + "/items", timeout=2)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"


def test_handler_errors_become_responses(server: HttpServer) -> None:
    teapot = httpx.get(server.url + "/teapot", timeout=2)
    assert (teapot.status_code, teapot.json(), teapot.headers["x-why"]) == (
        418,
        {"detail": "short and stout"},
        "tea",
    )
    boom = httpx.get(server.url + "/boom", timeout=2)
    assert boom.status_code == 500
    assert [str(e) for e in server.errors] == ["handler bug"]


def test_requests_are_recorded_in_order_with_parsed_bodies(server: HttpServer) -> None:
    httpx.post(server.url + "/items", json={"n": 1}, timeout=2)
    httpx.post(server.url + "/items", data={"n": "2"}, headers={"X-Trace": "abc"}, timeout=2)
    httpx.get(server.url + "/items/3", timeout=2)
    recorded = server.requests
    assert [(r.method, r.path) for r in recorded] == [
        ("POST", "/items"),
        ("POST", "/items"),
        ("GET", "/items/3"),
    ]
    assert recorded[0].body == {"n": 1}
    assert recorded[1].body == {"n": "2"}
    assert recorded[1].headers["x-trace"] == "abc"
    assert recorded[0].at <= recorded[1].at <= recorded[2].at
    assert len(server.requests_to("/items", "POST")) == 2
    server.reset_requests()
    assert server.requests == []


def test_concurrent_requests_are_all_served_and_recorded(server: HttpServer) -> None:
    with httpx.Client(timeout=5) as client, ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda i: client.get(f"{server.url}/items/{i}").status_code, range(24)))
    assert codes == [200] * 24
    assert sorted(int(r.path.split("/")[2]) for r in server.requests) == list(range(24))


def test_closed_listener_refuses_and_reopens_on_the_same_port(server: HttpServer, port_refuses) -> None:
    port = server.port
    with httpx.Client(timeout=2) as client:
        assert client.get(server.url + "/items/1").status_code == 200
        server.close_listener()
        assert port_refuses(port)
        with pytest.raises(httpx.ConnectError):
            client.get(server.url + "/items/1")
        server.reopen_listener()
        assert server.port == port
        assert client.get(server.url + "/items/1").status_code == 200


def test_injected_responses_apply_to_the_next_n_requests_only(server: HttpServer) -> None:
    server.inject(2, Response.json({"error": "injected"}, status=503))
    codes = [httpx.get(server.url + "/items/1", timeout=2).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert server.pending_injections() == 0


def test_injection_can_target_matching_requests(server: HttpServer) -> None:
    server.inject(1, Response.json({}, status=500), matches=lambda r: r.method == "POST")
    assert httpx.get(server.url + "/items/1", timeout=2).status_code == 200
    assert httpx.post(server.url + "/items", json={}, timeout=2).status_code == 500


def test_injected_delay_times_the_client_out_and_stop_wakes_the_handler(server_threads) -> None:
    srv = HttpServer(name="slowpoke")
    srv.route("GET", "/", _echo)
    srv.start()
    srv.inject(1, delay_s=30.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(srv.url + "/", timeout=0.2)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 2.0
    assert [t for t in server_threads() if "slowpoke" in t.name] == []


def test_stop_leaves_no_listening_port_and_no_thread(port_refuses, server_threads) -> None:
    srv = HttpServer(name="gone")
    srv.route("GET", "/", _echo)
    srv.start()
    port = srv.port
    assert httpx.get(srv.url + "/", timeout=2).status_code == 200
    srv.stop()
    srv.stop()  # idempotent
    assert port_refuses(port)
    assert [t for t in server_threads() if t.name.startswith("gone-")] == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url + "/", timeout=2)


def test_starting_twice_is_an_error(server: HttpServer) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
