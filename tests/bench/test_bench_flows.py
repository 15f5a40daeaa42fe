"""bench.flows: the I/O meter attributes time to the right bucket, and bad options are one line."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx

from bench.flows import IoMeter
from sandbox.httpserver import HttpServer, Response


def test_the_meter_splits_world_and_prefect_calls_and_ignores_other_threads() -> None:
    server = HttpServer(name="meter")
    server.route("GET", "/api/health", lambda _r: Response.json({"ok": True}))
    server.route("GET", "/other", lambda _r: Response.json({"ok": True}))
    with server:
        meter = IoMeter(threading.current_thread(), prefect_url=server.url + "/api")
        with meter.active():
            httpx.get(server.url + "/api/health")  # the "Prefect API"
            httpx.get(server.url + "/other")  # the world
            httpx.get(server.url + "/other")
            time.sleep(0)  # the call under test (the meter's sleep bucket), not a wait
            other = threading.Thread(target=lambda: httpx.get(server.url + "/other"))
            other.start()
            other.join()
    assert meter.calls == {"prefect": 1, "world": 2, "sleep": 1}
    assert meter.totals["world"] > 0 and meter.totals["prefect"] > 0 and meter.totals["sleep"] >= 0
    assert httpx.Client.send is not IoMeter  # restored (the meter is gone: no wrapper left behind)
    assert "wrapper" not in httpx.Client.send.__qualname__


def test_bad_options_are_one_line_and_exit_2() -> None:
    for args, message in (
        (["--runs", "0"], "--runs: must be at least 1"),
        (["--scenarios", "nope"], "--scenarios: unknown nope"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "bench.flows", *args], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2
        assert done.stderr.strip().splitlines()[-1].startswith(message)
