"""Bounded work per request: linear parsing and matching, counts before per-alert work, a body deadline,
and `/healthz` answering within 50 ms (p99) while the most expensive requests allowed are processed.

The `/healthz` test runs `python -m intake` as its own process (as deployed: its event loop, its
threads) and sends it, from this process, one after the other: 1 MiB bodies whose alert name is the
old quadratic case ("service" repeated), 80,000 tiny alerts (over the limit), 1 MiB bodies of deep
nesting and of long integers; beside them 1,000-alert groups, and a body trickled a byte at a time.
A prober measures `/healthz` round trips meanwhile.
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from intake.app import create_app
from intake.config import IntakeConfig
from intake.errors import PayloadInvalid
from intake.ingest import StoreIngestor
from intake.outbox import Outbox
from intake.parsers import ParseContext, parse
from intake.triage import Router, triage
from sandbox.testing import wait_for

DATA = Path(__file__).resolve().parents[1] / "data"
MIB = 1_048_576
AM = {"Content-Type": "application/json", "Authorization": "Bearer am-token"}


def _group(alerts: list[dict[str, Any]]) -> bytes:
    return json.dumps({"version": "4", "status": "firing", "receiver": "r", "alerts": alerts}).encode()


def _named(name: str, i: int = 0) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": name, "service": "emotionscare", "n": str(i)},
        "annotations": {"summary": name[:64]},
        "startsAt": "2026-11-26T14:08:00Z",
        "fingerprint": f"bounded-{i}",
    }


def _long_name_body(size: int, word: str = "service") -> bytes:
    return _group([_named(word * (size // len(word)))])


def _best_of(n: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(n):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def test_a_1mb_name_costs_linear_time_not_quadratic() -> None:
    """Parse + triage of a 1 MiB name against a 64 KiB one: linear is ~16x, the old quadratic ~256x."""
    router = Router()

    def handle(body: bytes) -> None:
        for alert in parse("alertmanager", body, ParseContext()):
            triage(alert, router)

    for word in ("service", "db down ", "external"):
        small, large = _long_name_body(64 * 1024, word), _long_name_body(MIB - 1024, word)
        ratio = _best_of(3, lambda b=large: handle(b)) / _best_of(3, lambda b=small: handle(b))
        assert ratio < 48, f"{word!r}: 16x the input took {ratio:.0f}x the time"


def test_more_alerts_than_allowed_are_refused_before_any_is_validated() -> None:
    """80,000 tiny alerts: refused on the count, in about the time of decoding them, not of validating."""
    tiny = b'{"status": "firing", "alerts": [' + b",".join([b"{}"] * 80_000) + b"]}"
    with pytest.raises(PayloadInvalid, match="80000 alerts in one request, at most 1000 accepted"):
        parse("alertmanager", tiny, ParseContext())

    def refused() -> None:
        with pytest.raises(PayloadInvalid):
            parse("alertmanager", tiny, ParseContext())

    # Best of three for both sides: one measurement on a busy machine can be a preemption (it failed so,
    # 0.29 s against 0.26 s). Validating 80,000 alerts would cost ~100x the decode, not 20x.
    spent = _best_of(3, refused)
    decode = _best_of(3, lambda: json.loads(tiny))
    assert spent < 20 * decode + 0.05, (spent, decode)


def test_a_trickled_body_gets_408_after_the_timeout_and_nothing_is_stored(
    store: Any, outbox: Outbox, serve: Any
) -> None:
    config = IntakeConfig(tokens={"alertmanager": SecretStr("am-token")}, body_timeout_s=0.5)
    app = create_app(config, StoreIngestor(store, outbox, config))
    stop = threading.Event()
    with serve(app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /alerts/alertmanager HTTP/1.1\r\nHost: intake\r\nAuthorization: Bearer am-token\r\n"
                b"Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"
            )
            started = time.monotonic()

            def trickle() -> None:  # a byte every 50 ms: never idle, never done
                while not stop.wait(0.05):
                    try:
                        sock.sendall(b" ")
                    except OSError:
                        return

            sender = threading.Thread(target=trickle, daemon=True)
            sender.start()
            try:
                answer = _read_response(sock)
                waited = time.monotonic() - started
            finally:
                stop.set()
                sender.join(5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"body not received within 0.5 s" in answer
    assert 0.45 <= waited < 5.0, waited
    assert store.list_alerts() == [] and outbox.depth() == 0


def _read_response(sock: socket.socket) -> bytes:
    """One HTTP response with a Content-Length, however the bytes arrive."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096) or b"EOF"
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class Trickle(threading.Thread):
    """A body sent a byte every 20 ms over one connection, until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.stop = threading.Event()

    def run(self) -> None:
        with socket.create_connection(self.address, timeout=30) as sock:
            sock.sendall(
                b"POST /alerts/alertmanager HTTP/1.1\r\nHost: intake\r\nAuthorization: Bearer am-token\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"
            )
            while not self.stop.wait(0.02):
                try:
                    sock.sendall(b" ")
                except OSError:
                    return


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


@pytest.mark.slow
def test_healthz_p99_stays_under_50ms_while_hostile_requests_are_processed(
    tmp_path: Path, intake_process: Any
) -> None:
    """p99 of `/healthz` on the intake under attack, against the same prober on an idle twin.

    The budget is 50 ms plus the idle twin's own p99, measured in the same seconds by alternating
    probes: on a quiet machine that is the 50 ms of the goal; on a machine busy with other work (CI, five
    test suites on two cores) the scheduling delay both processes suffer is not charged to the intake.
    A loop blocked by parsing (the old seconds-long name matching) fails either way.
    """
    hostile = [
        _long_name_body(MIB - 2048),  # the old quadratic name, as long as the body limit allows
        _group([_named(f"HighMemoryUsage{i}", i) for i in range(1000)]),  # the most alerts allowed
        b'{"status": "firing", "alerts": [' + b",".join([b"{}"] * 80_000) + b"]}",  # over the count
        b'{"alerts": ' + b"[" * 500_000 + b"]" * 500_000 + b"}",  # deep nesting, 1 MB
        b'{"alerts": [' + b",".join([b"9" * 4000] * 250) + b"]}",  # long integers, 1 MB
    ]
    assert all(len(body) <= MIB for body in hostile)
    answers: dict[int, int] = {}
    attacked: list[float] = []
    idle: list[float] = []
    stop = threading.Event()

    def timed(client: httpx.Client) -> float:
        started = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        return time.perf_counter() - started

    with (
        intake_process(tmp_path, f"sqlite:///{tmp_path / 'attacked.sqlite3'}", "attacked") as (_, url),
        intake_process(tmp_path, f"sqlite:///{tmp_path / 'idle.sqlite3'}", "idle") as (_, twin_url),
    ):

        def send(bodies: list[bytes]) -> None:
            with httpx.Client(base_url=url, timeout=120.0) as client:
                while not stop.is_set():
                    for body in bodies:
                        code = client.post("/alerts/alertmanager", content=body, headers=AM).status_code
                        answers[code] = answers.get(code, 0) + 1

        # one sender for the 1,000-alert group (its store takes seconds), one cycling through the rest
        senders = [
            threading.Thread(target=send, args=(hostile[1:2],), daemon=True),
            threading.Thread(target=send, args=(hostile[:1] + hostile[2:],), daemon=True),
        ]
        trickle = Trickle(url)
        with httpx.Client(base_url=url, timeout=10.0) as probe, httpx.Client(base_url=twin_url) as twin:
            timed(probe), timed(twin)  # connections open before the clock starts
            for thread in (*senders, trickle):
                thread.start()
            # measure once the cycling sender has been through its bodies
            wait_for(lambda: sum(answers.values()) >= len(hostile), timeout_s=120.0)
            deadline = time.monotonic() + 6.0
            while time.monotonic() < deadline:
                attacked.append(timed(probe))
                idle.append(timed(twin))
            stop.set()
            trickle.stop.set()
        for thread in (*senders, trickle):
            thread.join(120)

    assert set(answers) <= {202, 400, 422}, answers
    print(
        f"healthz under attack: p50 {statistics.median(attacked) * 1000:.1f} ms, p99 {_p99(attacked) * 1000:.1f}"
        f" ms, max {max(attacked) * 1000:.1f} ms, {len(attacked)} probes; idle twin p99 {_p99(idle) * 1000:.1f}"
        f" ms; answers {answers}"
    )
    budget = 0.050 + _p99(idle)
    assert len(attacked) >= 50 and _p99(attacked) <= budget, (
        f"healthz p99 {_p99(attacked) * 1000:.1f} ms (max {max(attacked) * 1000:.1f}) over {len(attacked)} "
        f"probes under attack; idle twin p99 {_p99(idle) * 1000:.1f} ms; answers {answers}"
    )
