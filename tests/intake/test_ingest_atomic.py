"""All or nothing per request, over real HTTP, on SQLite and a real PostgreSQL: a group whose second alert
cannot be stored leaves nothing of the request (raw payload, alerts, incidents, outbox rows); the same
group corrected is three incidents. Also: a replayed Sentry request is stored once; a worse alert raises
the incident it joins; group commit (`ingest_many`) rolls a failing request back alone.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from intake.app import create_app
from intake.config import IntakeConfig
from intake.ingest import IngestRequest, Receipt, StoreIngestor
from intake.outbox import Outbox, SqlOutbox, open_outbox
from intake.parsers import parse
from runbook.severity import Severity
from runbook.store import SEVERITY_RAISED_KIND, Store, open_store

DATA = Path(__file__).resolve().parents[1] / "data"
AM_TOKEN = "am-token"
SENTRY_SECRET = "sentry-client-secret"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'incidents.sqlite3'}"
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def store_and_outbox(db_url: str) -> Iterator[tuple[Store, Outbox]]:
    store = open_store(db_url)
    outbox = open_outbox(db_url)
    try:
        yield store, outbox
    finally:
        outbox.close()
        store.close()


def group(*names: str, poison: int | None = None) -> bytes:
    """An Alertmanager group of one firing alert per name; `poison`: that alert's label holds a NUL."""
    template = json.loads((DATA / "alertmanager_probe_failure.json").read_text())
    alerts = []
    for n, name in enumerate(names):
        alert = copy.deepcopy(template["alerts"][0])
        alert["labels"]["alertname"] = name
        alert["fingerprint"] = hashlib.sha256(name.encode()).hexdigest()[:16]
        if n == poison:
            alert["labels"]["team"] = "web\u0000ops"
        alerts.append(alert)
    template["alerts"] = alerts
    return json.dumps(template).encode()


def counts(store: Store, outbox: Outbox) -> tuple[int, int, int, int]:
    """Raw payloads, alerts, incidents, outbox rows."""
    rows = store.count_rows()
    in_outbox = sum(outbox.get(i.id) is not None for i in store.list_incidents(limit=1000))
    return rows["raw_payloads"], rows["alerts"], rows["incidents"], in_outbox


class PoisonedOutbox(SqlOutbox):
    """The real outbox, whose second row of a request fails (the second alert cannot be stored)."""

    poisoned = True
    calls = 0

    def enqueue_many(self, incident_ids: list[str], deployment: str) -> None:
        type(self).calls += len(incident_ids)
        if self.poisoned and type(self).calls >= 2:
            raise RuntimeError("the second alert's outbox row cannot be stored")
        super().enqueue_many(incident_ids, deployment)


def post(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post(
        "/alerts/alertmanager",
        content=body,
        headers={"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"},
    )


def test_a_group_whose_second_alert_cannot_be_stored_leaves_nothing(
    intake_config: IntakeConfig, store_and_outbox: tuple[Store, Outbox], serve: Any, db_url: str
) -> None:
    store, outbox = store_and_outbox
    if db_url.startswith("sqlite"):  # SQLite holds a NUL: the failure is forced in the outbox row
        assert isinstance(outbox, SqlOutbox)
        outbox = PoisonedOutbox(outbox._db)
        PoisonedOutbox.calls = 0
        bad = group("A", "B", "C")
    else:  # PostgreSQL refuses a NUL in text and JSONB: the real thing
        bad = group("A", "B", "C", poison=1)
    app = create_app(intake_config, StoreIngestor(store, outbox, intake_config))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30.0) as client:
        refused = post(client, bad)
        assert refused.status_code == 503 or 400 <= refused.status_code < 500, refused.text
        assert counts(store, outbox) == (0, 0, 0, 0)
        assert outbox.depth() == 0

        PoisonedOutbox.poisoned = False
        try:
            answer = post(client, group("A", "B", "C"))
        finally:
            PoisonedOutbox.poisoned = True
        assert answer.status_code == 202, answer.text
        assert len(answer.json()["incidents_created"]) == 3
    assert counts(store, outbox) == (1, 3, 3, 3)
    assert outbox.depth() == 3


def sentry_post(client: httpx.Client, body: bytes, request_id: str) -> httpx.Response:
    signature = hmac.new(SENTRY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return client.post(
        "/alerts/sentry",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Sentry-Hook-Resource": "event_alert",
            "Sentry-Hook-Signature": signature,
            "Sentry-Hook-Timestamp": str(int(time.time())),
            "Request-ID": request_id,
        },
    )


def test_a_replayed_sentry_request_is_answered_but_stored_once(
    intake_config: IntakeConfig, store_and_outbox: tuple[Store, Outbox], serve: Any
) -> None:
    store, outbox = store_and_outbox
    body = (DATA / "sentry_event_alert.json").read_bytes()
    app = create_app(intake_config, StoreIngestor(store, outbox, intake_config))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30.0) as client:
        first = sentry_post(client, body, "3c1e8f1e-9d1f-4a54-9a57-0f6b9a7b2c11")
        replay = sentry_post(client, body, "3c1e8f1e-9d1f-4a54-9a57-0f6b9a7b2c11")
        other = sentry_post(client, body, "0f7a1c2e-0000-4a54-9a57-0f6b9a7b2c11")
    assert (first.status_code, replay.status_code, other.status_code) == (202, 202, 202)
    assert replay.json()["duplicate_of"] == first.json()["raw_id"]
    assert "duplicate_of" not in first.json() and "duplicate_of" not in other.json()
    rows = store.count_rows()
    assert (rows["raw_payloads"], rows["alerts"]) == (
        2,
        2,
    )  # the first and the other delivery, not the replay
    [incident] = store.list_incidents()
    assert incident.alert_count == 2


def test_the_store_keeps_one_payload_per_source_and_request_id(
    store_and_outbox: tuple[Store, Outbox],
) -> None:
    store, _ = store_and_outbox
    first, stored = store.save_raw_payload_once("sentry", b"{}", {}, request_id="r-1")
    again, stored_again = store.save_raw_payload_once("sentry", b"{}", {}, request_id="r-1")
    other_source, _ = store.save_raw_payload_once("grafana", b"{}", {}, request_id="r-1")
    assert (stored, stored_again, again) == (True, False, first)
    assert other_source != first
    assert store.get_raw_payload(first).request_id == "r-1"
    assert store.count_rows()["raw_payloads"] == 2


def test_a_worse_alert_raises_the_incident_it_joins_and_a_milder_one_never_lowers_it(
    store_and_outbox: tuple[Store, Outbox], intake_config: IntakeConfig
) -> None:
    store, _ = store_and_outbox
    body = (DATA / "alertmanager_probe_failure.json").read_bytes()
    [alert] = parse("alertmanager", body, intake_config.parse_context())
    first = store.add_alert(alert)
    incident, _ = store.open_incident_for(first, Severity.P2, "p2.rule", None)
    for level in (Severity.P3, Severity.P1, Severity.P2):
        joined, created = store.open_incident_for(
            store.add_alert(alert.model_copy(update={"id": f"{alert.id}-{level}"})),
            level,
            f"{level}.rule",
            None,
        )
        assert not created and joined.id == incident.id
    final = store.get_incident(incident.id)
    assert (final.severity, final.severity_rule, final.alert_count) == (Severity.P1, "P1.rule", 4)
    raised = [e for e in final.timeline if e.kind == SEVERITY_RAISED_KIND]
    assert len(raised) == 1
    assert raised[0].evidence is not None
    assert (raised[0].evidence["from"], raised[0].evidence["to"]) == ("P2", "P1")
    assert raised[0].evidence["alert_id"] == f"{alert.id}-P1"


def test_group_commit_rolls_a_failing_request_back_alone(
    intake_config: IntakeConfig, store_and_outbox: tuple[Store, Outbox], db_url: str
) -> None:
    store, outbox = store_and_outbox
    ctx = intake_config.parse_context()
    bodies = [group("A"), group("B", "C"), group("D")]
    requests = [IngestRequest("alertmanager", b, {}, parse("alertmanager", b, ctx)) for b in bodies]
    # the second request fails after its first alert was stored (its second alert points at no payload)
    broken = requests[1].alerts[1].model_copy(update={"name": None})
    requests[1] = IngestRequest("alertmanager", bodies[1], {}, [requests[1].alerts[0], broken])
    results = StoreIngestor(store, outbox, intake_config).ingest_many(requests)
    assert isinstance(results[0], Receipt) and isinstance(results[2], Receipt)
    assert isinstance(results[1], Exception)
    assert counts(store, outbox) == (2, 2, 2, 2)
    assert outbox.depth() == 2
    assert {i.dedupe_key for i in store.list_incidents()} == {
        a.fingerprint for r in (requests[0], requests[2]) for a in r.alerts
    }
