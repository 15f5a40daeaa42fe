"""`IngestWriter`, the intake's batched writes, on both backends: what it stores equals what the
`Store` methods one by one store, its queued rows are written only when flushed (and with the
transaction: a failure after a flush leaves nothing), and the upsert's answers need no read-back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runbook.errors import StoreFailed
from runbook.models import Alert, AlertSource, Signals, TimelineEntry
from runbook.severity import Severity
from runbook.store import SEVERITY_RAISED_KIND, Store

T0 = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)


def _alert(fingerprint: str, name: str = "ServiceDown") -> Alert:
    return Alert(
        source=AlertSource.ALERTMANAGER,
        fingerprint=fingerprint,
        name=name,
        service="emotionscare",
        labels={"alertname": name},
        annotations={"summary": f"{name} on emotionscare"},
        starts_at=T0,
        signals=Signals(server_errors_5xx=True),
    )


def test_a_batch_is_stored_by_flush_with_links_and_timelines(store: Store) -> None:
    alerts = [_alert(f"fp-{i}") for i in range(5)] + [_alert("fp-0")]
    with store.transaction() as tx:
        writer = tx.ingest_writer()
        raw_id, stored = writer.raw_payload("alertmanager", b"{}", {"Authorization": "Bearer x", "X-A": "1"})
        assert stored
        opened = []
        for alert in alerts:
            incident = writer.open_incident(alert, Severity.P2, "rule.p2", "service-down")
            writer.alert(alert, raw_ref=raw_id, incident_id=incident.id)
            opened.append(incident)
        assert store.count_rows()["alerts"] == 0  # queued, not yet written (another connection)
        writer.flush()
    assert [o.created for o in opened] == [True] * 5 + [False]
    assert opened[5].id == opened[0].id and opened[0].flow_run_id is None
    assert store.count_rows()["raw_payloads"] == 1 and store.count_rows()["alerts"] == 6
    assert store.get_raw_payload(raw_id).headers == {"x-a": "1"}  # the credential is not kept
    for alert, incident in zip(alerts, opened, strict=True):
        assert store.alert_incident(alert.id) == incident.id
    first = store.get_incident(opened[0].id)
    assert first.alert_count == 2
    assert [e.kind for e in first.timeline] == ["opened"]
    assert first.timeline[0].evidence == {"alert_id": alerts[0].id, "fingerprint": "fp-0"}


def test_a_worse_alert_raises_the_level_without_a_read_back(store: Store) -> None:
    with store.transaction() as tx:
        writer = tx.ingest_writer()
        first = writer.open_incident(_alert("fp"), Severity.P3, "rule.p3", None)
        same = writer.open_incident(_alert("fp"), Severity.P3, "rule.p3", None)
        worse = writer.open_incident(_alert("fp", "Worse"), Severity.P1, "rule.p1", None)
        milder = writer.open_incident(_alert("fp"), Severity.P4, "rule.p4", None)
        writer.flush()
    assert (first.severity, same.severity, worse.severity, milder.severity) == (
        Severity.P3,
        Severity.P3,
        Severity.P1,
        Severity.P1,
    )
    incident = store.get_incident(first.id)
    assert (incident.severity, incident.severity_rule, incident.alert_count) == (Severity.P1, "rule.p1", 4)
    assert [e.kind for e in incident.timeline] == ["opened", SEVERITY_RAISED_KIND]


def test_a_replay_keyed_payload_is_stored_once_and_at_once(store: Store) -> None:
    with store.transaction() as tx:
        writer = tx.ingest_writer()
        first, stored = writer.raw_payload("sentry", b"{}", {}, request_id="req-1")
        again, stored_again = writer.raw_payload("sentry", b"{}", {}, request_id="req-1")
        writer.flush()
    assert (stored, stored_again, again) == (True, False, first)
    assert store.count_rows()["raw_payloads"] == 1


def test_a_failing_flush_leaves_nothing_of_the_transaction(store: Store) -> None:
    bad = _alert("fp-bad").model_copy(update={"name": None})  # NOT NULL: refused at the flush
    with pytest.raises(StoreFailed), store.transaction() as tx:
        writer = tx.ingest_writer()
        raw_id, _ = writer.raw_payload("alertmanager", b"{}", {})
        incident = writer.open_incident(_alert("fp-ok"), Severity.P2, "rule.p2", None)
        writer.alert(_alert("fp-ok"), raw_ref=raw_id, incident_id=incident.id)
        writer.timeline(incident.id, TimelineEntry(actor="test", kind="note", message="queued"))
        writer.alert(bad, raw_ref=raw_id, incident_id=incident.id)
        writer.flush()
    assert all(n == 0 for n in store.count_rows().values())


def test_once_per_key_per_writer(store: Store) -> None:
    with store.transaction() as tx:
        writer = tx.ingest_writer()
        assert [writer.once("a"), writer.once("a"), writer.once("b")] == [True, False, True]
        assert tx.ingest_writer().once("a")


def test_add_alert_returns_the_stored_row_for_a_known_id(store: Store) -> None:
    alert = _alert("fp-1")
    assert store.add_alert(alert) == alert
    renamed = alert.model_copy(update={"name": "Renamed"})
    assert store.add_alert(renamed).name == "ServiceDown"
