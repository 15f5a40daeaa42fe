"""`python -m intake` as a process: SIGKILL in the middle of a burst loses nothing that got a 202.

The process (conftest's `intake_process`) reads its settings from the environment, listens on a free
port and runs without a dispatcher (`--no-dispatch`), so the outbox keeps the work. After the kill,
every request that got a 202 has its raw payload, its alerts and its incident's outbox row in the
store, and a restarted process serves again on the same store.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from intake.outbox import open_outbox
from sandbox.testing import wait_for


@pytest.mark.slow
def test_sigkill_during_a_burst_loses_nothing_that_was_acknowledged(
    tmp_path: Path, store_url: str, intake_process: Any
) -> None:
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
