"""Two intake replicas on one PostgreSQL store, fed the same alerts at once: one incident and one run each.

Each replica has its own store connection pool, outbox pool, dispatcher thread and uvicorn server
(in this process, on its own port); PostgreSQL and Prefect (the test harness) are shared, as in
production. Also exercises the PostgreSQL outbox (leases with FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

import asyncio
import functools
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from intake.app import create_app
from intake.config import DispatchConfig, IntakeConfig
from intake.dispatch import Dispatcher
from intake.ingest import StoreIngestor
from intake.outbox import open_outbox
from sandbox.testing import wait_for

pytestmark = pytest.mark.postgres

DATA = Path(__file__).resolve().parents[1] / "data"
COPIES_PER_REPLICA = 100


def _same(dispatcher: Dispatcher) -> Dispatcher:
    return dispatcher


async def _feed(urls: list[str], body: bytes) -> list[int]:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer am-token"}
    limits = httpx.Limits(max_connections=400)
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:
        answers = await asyncio.gather(
            *(
                client.post(f"{url}/alerts/alertmanager", content=body, headers=headers)
                for _ in range(COPIES_PER_REPLICA)
                for url in urls
            )
        )
    return [a.status_code for a in answers]


def test_two_replicas_on_one_postgres_store_start_one_run_per_incident(
    pg_dsn: str, prefect_api: str, intake_config: IntakeConfig, serve: Any
) -> None:
    from prefect.client.orchestration import get_client

    from runbook.store import open_store

    body = (DATA / "alertmanager_group_3_firing_1_resolved.json").read_bytes()
    dispatch = DispatchConfig(api_url=prefect_api, rate_per_s=100, burst=20, idle_poll_s=0.05, lease_s=5)

    with ExitStack() as stack:
        urls, stores, outboxes = [], [], []
        for n in (1, 2):
            store = open_store(pg_dsn)
            stack.callback(store.close)
            outbox = open_outbox(pg_dsn)
            stack.callback(outbox.close)
            dispatcher = Dispatcher(outbox, store, dispatch, owner=f"replica-{n}")
            ingestor = StoreIngestor(store, outbox, intake_config, on_enqueued=dispatcher.wake)
            app = create_app(intake_config, ingestor, background=functools.partial(_same, dispatcher))
            urls.append(stack.enter_context(serve(app)))
            stores.append(store)
            outboxes.append(outbox)

        codes = asyncio.run(_feed(urls, body))
        assert codes == [202] * (2 * COPIES_PER_REPLICA)

        keys = [
            "alertmanager:5c3b2a91de07f4a1",
            "alertmanager:a17f0e3c9b2d6e45",
            "alertmanager:0f4e6d2b8a1c3957",
        ]
        incidents = [stores[0].find_open_incident(k) for k in keys]
        assert all(i is not None for i in incidents)
        assert [i.alert_count for i in incidents if i] == [2 * COPIES_PER_REPLICA] * 3
        assert wait_for(lambda: outboxes[0].depth() == 0, 30.0), outboxes[0].depth()

    ids = {i.id for i in incidents if i}
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("respond/respond")
        runs = [
            r
            for r in client.read_flow_runs(limit=200)
            if r.deployment_id == deployment.id and r.parameters["incident_id"] in ids
        ]
    assert sorted(r.parameters["incident_id"] for r in runs) == sorted(ids)
    check = open_store(pg_dsn)
    try:
        assert {check.get_incident(i).flow_run_id for i in ids} == {str(r.id) for r in runs}
    finally:
        check.close()
