"""The app's side of group commit: with an ingestor that has `ingest_many`, concurrent requests share
batches, each is answered after its batch, a failure in one is that request's 503 only, and a failed
batch is a 503 for each of its requests.

`BatchingIngestor` stands in for the store's `ingest_many` (one transaction per batch, the storage
side's work): it runs today's `StoreIngestor.ingest` per request under one lock, recording batch sizes.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from intake.app import create_app
from intake.batch import IngestRequest
from intake.config import IntakeConfig
from intake.ingest import Receipt, StoreIngestor
from intake.metrics import IntakeMetrics
from intake.outbox import Outbox

DATA = Path(__file__).resolve().parents[1] / "data"
AM = {"Content-Type": "application/json", "Authorization": "Bearer am-token"}


class BatchingIngestor(StoreIngestor):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.fail_batches = False
        self.release = threading.Event()
        self.release.set()
        self.held = 0
        """Requests in the batch being held by `release` (0 when none is)."""

    def ingest_many(self, requests: Sequence[IngestRequest]) -> list[Receipt | Exception]:
        if not self.release.is_set():
            self.held = len(requests)
        self.release.wait(30)
        self.held = 0
        if self.fail_batches:
            raise RuntimeError("database is locked")
        outcomes: list[Receipt | Exception] = []
        with self.lock:
            for r in requests:
                if any(a.name == "PoisonPill" for a in r.alerts):
                    outcomes.append(RuntimeError("this one cannot be stored"))
                    continue
                outcomes.append(self.ingest(r.source, r.body, r.headers, r.alerts))
        return outcomes


def _body(i: int, name: str | None = None) -> bytes:
    doc = json.loads((DATA / "alertmanager_probe_failure.json").read_bytes())
    doc["alerts"][0]["fingerprint"] = f"batch-{i}"
    doc["alerts"][0]["labels"]["alertname"] = name or f"ProbeFailure{i}"
    return json.dumps(doc).encode()


async def _post_all(url: str, bodies: list[bytes]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as client:
        return await asyncio.gather(
            *(client.post("/alerts/alertmanager", content=b, headers=AM) for b in bodies)
        )


async def _queued(app: Any, ingestor: BatchingIngestor, n: int, timeout_s: float = 30.0) -> None:
    """Poll (with a deadline) until `n` requests are held: in the held batch or queued behind it.

    The held batch counts too: when the server reads many requests before the committer's task runs
    (a loaded machine, a fast HTTP path), the first batch takes them all and none stays queued.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    while ingestor.held + app.state.committer.queued() < n:
        assert asyncio.get_running_loop().time() < deadline, "requests did not queue"
        await asyncio.sleep(0.01)


def test_concurrent_requests_share_batches_and_each_gets_its_own_answer(
    intake_config: IntakeConfig, store: Any, outbox: Outbox, serve: Any
) -> None:
    ingestor = BatchingIngestor(store, outbox, intake_config)
    metrics = IntakeMetrics()
    app = create_app(intake_config, ingestor, metrics=metrics)
    bodies = [_body(i) for i in range(40)] + [_body(99, "PoisonPill")]
    with serve(app) as url:
        ingestor.release.clear()  # hold the first batch so that the others queue behind it
        sending = asyncio.new_event_loop()
        try:
            task = sending.create_task(_post_all(url, bodies))
            sending.run_until_complete(
                _queued(app, ingestor, 20)
            )  # the first batch held, 20+ waiting behind it
            ingestor.release.set()
            answers = sending.run_until_complete(task)
        finally:
            sending.close()
        committer = app.state.committer
        assert committer is not None and committer.running

    codes = [a.status_code for a in answers]
    assert codes[:40] == [202] * 40 and codes[40] == 503, codes
    assert "retry later (RuntimeError)" in answers[40].json()["error"]
    assert sum(committer.batches) == 41 and max(committer.batches) > 1, committer.batches
    assert len(store.list_alerts()) == 40 and outbox.depth() == 40
    raw_ids = {a.json()["raw_id"] for a in answers[:40]}
    assert len(raw_ids) == 40
    # /metrics: one observation per group commit, its requests summed
    text = metrics.render()[0].decode()
    assert f"intake_group_commit_requests_count {float(len(committer.batches))}" in text
    assert "intake_group_commit_requests_sum 41.0" in text
    assert f"intake_group_commit_duration_seconds_count {float(len(committer.batches))}" in text


def test_a_failed_batch_is_a_503_for_each_of_its_requests_and_then_the_intake_goes_on(
    intake_config: IntakeConfig, store: Any, outbox: Outbox, serve: Any
) -> None:
    ingestor = BatchingIngestor(store, outbox, intake_config)
    app = create_app(intake_config, ingestor)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30.0) as client:
        ingestor.fail_batches = True
        failed = client.post("/alerts/alertmanager", content=_body(1), headers=AM)
        ingestor.fail_batches = False
        stored = client.post("/alerts/alertmanager", content=_body(1), headers=AM)

    assert (failed.status_code, stored.status_code) == (503, 202)
    assert len(store.list_alerts()) == 1
