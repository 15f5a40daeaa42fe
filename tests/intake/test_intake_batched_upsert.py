"""The batched incident upsert of a group commit, on SQLite and a real PostgreSQL: a batch stores and
answers what its alerts taken one by one would (a repeated dedupe key, a raise within the batch, a raise
of an incident open before it, a resolved alert after a firing one of its key), with one multi-row
upsert and one UPDATE for the whole batch; a request that cannot be stored fails alone and leaves
nothing, the others commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from intake.config import IntakeConfig
from intake.ingest import IngestRequest, Receipt, StoreIngestor
from intake.outbox import Outbox, open_outbox
from runbook.models import Alert, AlertSource, AlertStatus
from runbook.severity import Severity
from runbook.store import SEVERITY_RAISED_KIND, Store, open_store
from runbook.store.ingest_writer import IncidentClaim


def _url(backend: str, tmp_path: Path, name: str, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
    return str(request.getfixturevalue("pg_server").create_database(f"t_{name}_{uuid.uuid4().hex[:12]}"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_pair(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Any]:  # a factory: name -> (store, outbox) on a fresh database of the backend
    opened: list[tuple[Store, Outbox]] = []

    def make(name: str) -> tuple[Store, Outbox]:
        url = _url(backend, tmp_path, name, request)
        pair = (open_store(url), open_outbox(url))
        opened.append(pair)
        return pair

    yield make
    for store, outbox in opened:
        outbox.close()
        store.close()


def alert(key: str, level: str, *, resolved: bool = False) -> Alert:
    """A generic alert of dedupe key `key` (no catalogue: the fingerprint) whose label sets its level."""
    return Alert(
        source=AlertSource.GENERIC,
        fingerprint=key,
        status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
        name=f"Check{key.upper()}",
        labels={"alertname": f"Check{key.upper()}", "severity": level},
    )


def request_of(*alerts: Alert) -> IngestRequest:
    return IngestRequest("generic", b'{"alerts": "as parsed"}', {}, list(alerts))


def outcome(store: Store, receipts: list[Receipt | Exception]) -> dict[str, Any]:
    """What a run stored and answered, with incident ids replaced by their dedupe keys."""
    incidents = {i.id: store.get_incident(i.id) for i in store.list_incidents(limit=100)}
    key = {i: inc.dedupe_key for i, inc in incidents.items()}
    return {
        "answers": [
            type(r).__name__
            if isinstance(r, Exception)
            else (
                [key[i] for i in r.created],
                [key[i] for i in r.joined_incidents],
                [key[i] for i in r.resolved],
                r.unmatched_resolved,
            )
            for r in receipts
        ],
        "incidents": {
            inc.dedupe_key: (
                inc.severity,
                inc.severity_rule,
                inc.alert_count,
                [(e.kind, e.message, e.evidence) for e in inc.timeline],
            )
            for inc in incidents.values()
        },
        "rows": store.count_rows()["alerts"],
    }


def statements_run(store: Store) -> list[str]:
    """The SQL each cursor runs on the store's engine from now on (first word and table)."""
    seen: list[str] = []

    @event.listens_for(store.database.engine, "before_cursor_execute")
    def _(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()[:3]))

    return seen


def test_a_batch_stores_and_answers_what_its_alerts_one_by_one_would(
    open_pair: Any, intake_config: IntakeConfig
) -> None:
    before = alert("k3", "high")  # open before the batch, P2
    batch = [
        request_of(alert("k1", "warning"), alert("k2", "warning")),
        request_of(alert("k1", "critical"), alert("k1", "warning"), alert("k3", "critical")),
        request_of(
            alert("k2", "high"), alert("k1", "warning", resolved=True), alert("k9", "x", resolved=True)
        ),
    ]
    runs = {}
    for name in ("batched", "one_by_one"):
        store, outbox = open_pair(name)
        ingestor = StoreIngestor(store, outbox, intake_config)
        ingestor.ingest("generic", b"{}", {}, [before])
        if name == "batched":
            seen = statements_run(store)
            receipts: list[Receipt | Exception] = list(ingestor.ingest_many(batch))
            incident_writes = [s for s in seen if s.startswith(("INSERT INTO incidents", "UPDATE incidents"))]
        else:  # every alert its own request, as before batching: one upsert each
            receipts = []
            for r in batch:
                parts = [ingestor.ingest(r.source, r.body, r.headers, [a]) for a in r.alerts]
                receipts.append(
                    Receipt(
                        raw_id="",
                        created=[i for p in parts for i in p.created],
                        joined_incidents=[i for p in parts for i in p.joined_incidents],
                        resolved=[i for p in parts for i in p.resolved],
                        unmatched_resolved=sum(p.unmatched_resolved for p in parts),
                    )
                )
        runs[name] = outcome(store, receipts)
    assert runs["batched"] == runs["one_by_one"]
    assert runs["batched"]["answers"] == [
        (["k1", "k2"], [], [], 0),
        ([], ["k1", "k1", "k3"], [], 0),
        ([], ["k2"], ["k1"], 1),
    ]
    k1, k2, k3 = (runs["batched"]["incidents"][k] for k in ("k1", "k2", "k3"))
    assert (k1[0], k1[1], k1[2]) == (Severity.P1, "label.severity", 3)
    assert [kind for kind, _, _ in k1[3]] == ["opened", SEVERITY_RAISED_KIND, "source_resolved"]
    assert (k2[0], k2[2], [kind for kind, _, _ in k2[3]]) == (
        Severity.P2,
        2,
        ["opened", SEVERITY_RAISED_KIND],
    )
    assert (k3[0], k3[2], [kind for kind, _, _ in k3[3]]) == (
        Severity.P1,
        2,
        ["opened", SEVERITY_RAISED_KIND],
    )
    # the whole batch's incidents: one multi-row upsert and one UPDATE (the joins and raises folded in)
    assert incident_writes == ["INSERT INTO incidents", "UPDATE incidents SET"]


def test_a_request_that_cannot_be_stored_fails_alone_and_leaves_nothing(
    open_pair: Any, intake_config: IntakeConfig
) -> None:
    store, outbox = open_pair("one_bad")
    # no start and no receipt time: the multi-row upsert itself refuses it (started_at is NOT NULL)
    unstorable = alert("k4", "warning").model_copy(update={"starts_at": None, "received_at": None})
    batch = [
        request_of(alert("k1", "warning")),
        request_of(alert("k1", "critical"), unstorable),
        request_of(alert("k1", "high"), alert("k2", "warning")),
    ]
    results = StoreIngestor(store, outbox, intake_config).ingest_many(batch)
    assert isinstance(results[1], Exception)
    first, third = results[0], results[2]
    assert isinstance(first, Receipt) and isinstance(third, Receipt)
    rows = store.count_rows()
    assert (rows["raw_payloads"], rows["alerts"], rows["incidents"]) == (2, 3, 2)
    [k1] = first.created
    assert third.joined_incidents == [k1] and len(third.created) == 1
    incident = store.get_incident(k1)
    # the failed request's P1 join is gone: P3 raised to P2 by the third request only
    assert (incident.severity, incident.alert_count) == (Severity.P2, 2)
    raised = [e.evidence for e in incident.timeline if e.kind == SEVERITY_RAISED_KIND]
    assert [(e["from"], e["to"]) for e in raised if e] == [("P3", "P2")]
    assert {i.dedupe_key for i in store.list_incidents()} == {"k1", "k2"}
    assert outbox.depth() == 2


def test_more_claims_than_one_statement_holds_are_all_answered(open_pair: Any) -> None:
    """SQLAlchemy splits a long upsert into pages (1,000 rows, the parameter limit): all are answered."""
    store, _ = open_pair("pages")
    claims = [
        IncidentClaim(alert(f"k{i % 2600}", "warning"), Severity.P3, "rule.p3", None, f"k{i % 2600}")
        for i in range(2700)
    ]
    with store.transaction() as tx:
        answers = tx.ingest_writer().open_incidents(claims)
    assert [o.created for o, _ in answers] == [True] * 2600 + [False] * 100
    assert [o.id for o, _ in answers[2600:]] == [o.id for o, _ in answers[:100]]
    assert store.count_rows()["incidents"] == 2600
    assert store.get_incident(answers[0][0].id).alert_count == 2
