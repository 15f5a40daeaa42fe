"""A storm: 1,000 concurrent copies of one alert over real HTTP are one incident and one outbox row."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from intake.app import create_app
from intake.config import IntakeConfig
from intake.ingest import StoreIngestor
from intake.outbox import Outbox

DATA = Path(__file__).resolve().parents[1] / "data"
COPIES = 1000


async def _send_all(url: str, body: bytes) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=COPIES, max_keepalive_connections=COPIES)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:
        headers = {"Content-Type": "application/json", "Authorization": "Bearer am-token"}
        return await asyncio.gather(
            *(client.post("/alerts/alertmanager", content=body, headers=headers) for _ in range(COPIES))
        )


@pytest.mark.slow
def test_thousand_concurrent_copies_make_one_incident(
    intake_config: IntakeConfig, store: Any, outbox: Outbox, serve: Any
) -> None:
    body = (DATA / "alertmanager_probe_failure.json").read_bytes()
    app = create_app(intake_config, StoreIngestor(store, outbox, intake_config))

    with serve(app) as url:
        answers = asyncio.run(_send_all(url, body))

    assert [a.status_code for a in answers] == [202] * COPIES
    created = [i for a in answers for i in a.json()["incidents_created"]]
    assert len(created) == 1
    incident = store.find_open_incident("alertmanager:1a30ba71cca2921f")
    assert incident.id == created[0]
    assert incident.alert_count == COPIES
    assert outbox.depth() == 1
    assert len(store.list_alerts()) == COPIES  # every copy kept, none lost
    assert json.loads(body)["alerts"][0]["fingerprint"] == "1a30ba71cca2921f"
