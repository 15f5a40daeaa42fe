"""`python -m intake` as a process: SIGKILL in the middle of a burst loses nothing that got a 202.

The process reads its settings from the environment (RUNBOOK_STORE_URL, RUNBOOK_INTAKE_TOKENS), listens
on a free port (`--port 0`, read from uvicorn's log line) and runs without a dispatcher (`--no-dispatch`),
so the outbox keeps the work. After the kill, every request that got a 202 has its raw payload, its
alerts and its incident's outbox row in the store, and a restarted process serves again on the same store.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from intake.outbox import open_outbox

DATA = Path(__file__).resolve().parents[1] / "data"
LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@contextmanager
def intake_process(
    tmp_path: Path, store_url: str, name: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    log_path = tmp_path / f"{name}.log"
    env = {
        **os.environ,
        "RUNBOOK_STORE_URL": store_url,
        "RUNBOOK_INTAKE_TOKENS": json.dumps({"alertmanager": "am-token", "generic": "gen-token"}),
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "intake", "--host", "127.0.0.1", "--port", "0", "--no-dispatch"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        found: list[str] = []

        def listening() -> bool:
            match = LISTENING.search(log_path.read_text(errors="replace"))
            if match:
                found.append(match.group(1))
            return bool(match) or proc.poll() is not None

        assert wait_for(listening, 30.0) and found, log_path.read_text(errors="replace")
        yield proc, found[0]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.mark.slow
def test_sigkill_during_a_burst_loses_nothing_that_was_acknowledged(tmp_path: Path, store_url: str) -> None:
    from runbook.store import open_store

    bodies = [
        json.dumps({"alerts": [{"name": f"BurstAlert{i}", "summary": f"alert {i} of the burst"}]}).encode()
        for i in range(400)
    ]
    acknowledged: list[dict[str, Any]] = []
    stop = threading.Event()

    with intake_process(tmp_path, store_url, "first") as (proc, url):

        def burst() -> None:
            headers = {"Content-Type": "application/json", "Authorization": "Bearer gen-token"}
            with httpx.Client(base_url=url, timeout=5.0) as client:
                for body in bodies:
                    if stop.is_set():
                        return
                    try:
                        answer = client.post("/alerts/generic", content=body, headers=headers)
                    except httpx.TransportError:
                        return  # the process is gone
                    if answer.status_code == 202:
                        acknowledged.append(answer.json())

        sender = threading.Thread(target=burst)
        sender.start()
        assert wait_for(lambda: len(acknowledged) >= 20, 30.0)
        proc.send_signal(signal.SIGKILL)  # in the middle of the burst
        proc.wait(10)
        stop.set()
        sender.join(30)
    assert 20 <= len(acknowledged) < len(bodies)

    store = open_store(store_url)
    outbox = open_outbox(store_url)
    try:
        for receipt in acknowledged:
            assert store.get_raw_payload(receipt["raw_id"]) is not None
            [incident_id] = receipt["incidents_created"]
            assert len(store.list_alerts(incident_id=incident_id)) == 1
            row = outbox.get(incident_id)
            assert row is not None and row.dispatched_at is None  # kept for the dispatcher
    finally:
        outbox.close()
        store.close()

    # Restarted on the same store, it serves again (and a repeat of an acknowledged alert joins its incident).
    with intake_process(tmp_path, store_url, "second") as (_, url):
        answer = httpx.post(
            f"{url}/alerts/generic",
            content=bodies[0],
            headers={"Content-Type": "application/json", "Authorization": "Bearer gen-token"},
            timeout=10.0,
        )
        assert answer.status_code == 202
        assert answer.json()["incidents_joined"] == acknowledged[0]["incidents_created"]
