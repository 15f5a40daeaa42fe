"""The store contract, run against both backends (SQLite file, real PostgreSQL): see conftest.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from runbook.errors import IllegalTransition, NotFound, StoreFailed
from runbook.models import (
    ActionStatus,
    Alert,
    AlertSource,
    AlertStatus,
    IncidentStatus,
    Signals,
    TimelineEntry,
)
from runbook.settings import Settings, StoreSettings
from runbook.severity import Severity
from runbook.store import (
    SCHEMA_REVISION,
    SCHEMA_VERSION,
    PostgresStore,
    SchemaMismatch,
    SqliteStore,
    Store,
    open_store,
)

T0 = datetime(2025, 11, 14, 14, 8, tzinfo=UTC)
MIN = timedelta(minutes=1)
TARGET = "prod/deployment/emotionscare"


def _alert(fingerprint: str = "fp-1", **kw: object) -> Alert:
    fields: dict[str, object] = {
        "source": AlertSource.ALERTMANAGER,
        "fingerprint": fingerprint,
        "name": "ServiceDown",
        "service": "emotionscare",
        "labels": {"alertname": "ServiceDown", "severity": "critical"},
        "annotations": {"summary": "Homepage returns 500 error"},
        "starts_at": T0,
        "signals": Signals(server_errors_5xx=True, error_rate_pct=100),
    }
    fields.update(kw)
    return Alert.model_validate(fields)


def _open(store: Store, fingerprint: str = "fp-1", **kw: object) -> str:
    alert = store.add_alert(_alert(fingerprint))
    incident, _ = store.open_incident_for(alert, Severity.P1, "p1.service_unavailable", "service-down", **kw)
    return incident.id


# --- schema ----------------------------------------------------------------------------------------------


def test_schema_is_created_versioned_and_reopening_keeps_data(store: Store, store_url: str) -> None:
    assert store.schema_version() == SCHEMA_VERSION
    incident_id = _open(store)
    with open_store(store_url) as again:
        assert again.schema_version() == SCHEMA_VERSION
        assert again.get_incident(incident_id).title == "Homepage returns 500 error"


def test_a_newer_schema_is_refused(store: Store, store_url: str) -> None:
    with store.database.tx(write=True) as conn:  # a future release migrated the database
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(SchemaMismatch, match="revision 0099, newer than this code's"):
        open_store(store_url)


def test_an_older_schema_is_refused_with_the_command_to_run(store: Store, store_url: str) -> None:
    with store.database.tx(write=True) as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    with pytest.raises(SchemaMismatch) as info:
        open_store(store_url)
    assert str(info.value) == (
        f"store schema is at revision 0001, this code needs {SCHEMA_REVISION}: run python -m runbook.store upgrade"
    )


def test_backend_and_masked_url(store: Store, store_url: str) -> None:
    expected = SqliteStore if store_url.startswith("sqlite") else PostgresStore
    assert isinstance(store, expected)
    assert store.backend in ("sqlite", "postgresql")
    assert store.url in repr(store)


# --- raw payloads and alerts -----------------------------------------------------------------------------


def test_raw_payload_round_trip_without_credentials(store: Store) -> None:
    body = b'{"version": "4", "status": "firing"}\x00\xff'
    raw_id = store.save_raw_payload(
        "alertmanager",
        body,
        {
            "Content-Type": "application/json",
            "Authorization": "Bearer sekrit",
            "Sentry-Hook-Signature": "abc",
            "X-Api-Key": "k",
        },
    )
    raw = store.get_raw_payload(raw_id)
    assert (raw.source, raw.body) == ("alertmanager", body)
    assert raw.headers == {"content-type": "application/json"}
    assert raw.received_at.tzinfo is not None
    with pytest.raises(NotFound):
        store.get_raw_payload("nope")


def test_alert_round_trip_and_idempotent_add(store: Store) -> None:
    raw_id = store.save_raw_payload("alertmanager", b"{}", {})
    alert = _alert(raw_ref=raw_id, ends_at=T0 + MIN, status=AlertStatus.RESOLVED)
    stored = store.add_alert(alert)
    assert stored == alert
    again = store.add_alert(alert.model_copy(update={"name": "Changed"}))
    assert again == alert  # the first write stays
    assert store.list_alerts(fingerprint="fp-1") == [alert]
    assert store.list_alerts(fingerprint="other") == []
    assert store.alert_incident(alert.id) is None
    with pytest.raises(NotFound):
        store.alert_incident("nope")


# --- incidents -------------------------------------------------------------------------------------------


def test_open_incident_creates_then_joins(store: Store) -> None:
    first = store.add_alert(_alert())
    incident, created = store.open_incident_for(first, Severity.P1, "p1.service_unavailable", "service-down")
    assert created is True
    assert (incident.dedupe_key, incident.severity, incident.severity_rule) == (
        "fp-1",
        Severity.P1,
        "p1.service_unavailable",
    )
    assert (incident.status, incident.alert_count, incident.runbook) == (
        IncidentStatus.TRIGGERED,
        1,
        "service-down",
    )
    assert incident.started_at == T0  # "Note exact time issue started": the alert's startsAt
    assert incident.pagerduty_dedup_key == incident.id  # one dedup_key for the incident's life
    assert [(e.kind, e.actor) for e in incident.timeline] == [("opened", "alert:alertmanager")]

    second = store.add_alert(_alert())
    joined, created = store.open_incident_for(second, Severity.P2, "p2.error_rate_gt_5", None)
    assert created is False
    assert joined.id == incident.id and joined.alert_count == 2
    assert joined.severity == Severity.P1  # joining does not reclassify
    assert len(joined.timeline) == 1  # a storm does not flood the timeline
    assert [a.id for a in store.list_alerts(incident_id=incident.id)] == [first.id, second.id]
    assert store.alert_incident(second.id) == incident.id


def test_dedupe_key_override_and_security_flag(store: Store) -> None:
    a = store.add_alert(_alert("fp-a"))
    b = store.add_alert(_alert("fp-b"))
    one, _ = store.open_incident_for(
        a, Severity.P2, "r", None, dedupe_key="emotionscare:errors", security=True
    )
    two, created = store.open_incident_for(b, Severity.P2, "r", None, dedupe_key="emotionscare:errors")
    assert created is False and two.id == one.id and one.security is True


def test_resolved_incident_frees_its_key(store: Store) -> None:
    first = _open(store)
    store.set_status(first, IncidentStatus.RESOLVED, T0 + 10 * MIN, "runbook:service-down")
    assert store.find_open_incident("fp-1") is None
    second = _open(store)
    assert second != first
    found = store.find_open_incident("fp-1")
    assert found is not None and found.id == second


def test_get_and_find(store: Store) -> None:
    incident_id = _open(store)
    assert store.get_incident(incident_id, with_timeline=False).timeline == []
    found = store.find_open_incident("fp-1")
    assert found is not None and found.id == incident_id and len(found.timeline) == 1
    assert store.find_open_incident("unknown") is None
    with pytest.raises(NotFound):
        store.get_incident("nope")


def test_list_incidents(store: Store) -> None:
    a = _open(store, "a")
    b = _open(store, "b")
    store.set_status(a, IncidentStatus.RESOLVED, T0, "x")
    store.update_incident(b, flow_run_id="run-1")
    c = _open(store, "c")
    assert {i.id for i in store.list_incidents()} == {a, b, c}
    assert {i.id for i in store.list_incidents(open_only=True)} == {b, c}
    assert [i.id for i in store.list_incidents(open_only=True, undispatched=True)] == [c]
    assert len(store.list_incidents(limit=1)) == 1


def test_status_transitions_set_times_and_log(store: Store) -> None:
    incident_id = _open(store)
    acked = store.set_status(incident_id, IncidentStatus.ACKNOWLEDGED, T0 + MIN, "person:alice")
    assert acked.status == IncidentStatus.ACKNOWLEDGED and acked.acknowledged_at == T0 + MIN
    again = store.set_status(incident_id, IncidentStatus.ACKNOWLEDGED, T0 + 2 * MIN, "slack")
    assert again.acknowledged_at == T0 + MIN and len(again.timeline) == len(acked.timeline)  # no-op
    store.set_status(
        incident_id, IncidentStatus.MITIGATED, T0 + 3 * MIN, "runbook:service-down", "rolled back"
    )
    done = store.set_status(incident_id, IncidentStatus.RESOLVED, T0 + 8 * MIN, "runbook:service-down")
    assert (done.mitigated_at, done.resolved_at) == (T0 + 3 * MIN, T0 + 8 * MIN)
    assert not done.is_open
    status_entries = [(e.actor, e.message) for e in done.timeline if e.kind == "status"]
    assert status_entries == [
        ("person:alice", "triggered → acknowledged"),
        ("runbook:service-down", "rolled back"),
        ("runbook:service-down", "mitigated → resolved"),
    ]


def test_illegal_transition_changes_nothing(store: Store) -> None:
    incident_id = _open(store)
    store.set_status(incident_id, IncidentStatus.RESOLVED, T0 + MIN, "x")
    with pytest.raises(IllegalTransition):
        store.set_status(incident_id, IncidentStatus.ACKNOWLEDGED, T0 + 2 * MIN, "person:bob")
    incident = store.get_incident(incident_id)
    assert incident.status == IncidentStatus.RESOLVED and incident.acknowledged_at is None
    with pytest.raises(NotFound):
        store.set_status("nope", IncidentStatus.ACKNOWLEDGED, T0, "x")


def test_skipping_forward_sets_only_the_reached_time(store: Store) -> None:
    incident_id = _open(store)
    done = store.set_status(incident_id, IncidentStatus.RESOLVED, T0 + MIN, "runbook:service-down")
    assert (done.acknowledged_at, done.mitigated_at, done.resolved_at) == (None, None, T0 + MIN)


def test_update_incident(store: Store) -> None:
    incident_id = _open(store)
    updated = store.update_incident(
        incident_id,
        severity="P2",
        severity_rule="manual",
        flow_run_id="run-1",
        slack_thread_ts="1700000000.000100",
        runbook=None,
    )
    assert (updated.severity, updated.severity_rule, updated.flow_run_id) == (Severity.P2, "manual", "run-1")
    assert updated.slack_thread_ts == "1700000000.000100" and updated.runbook is None
    with pytest.raises(ValueError, match="status"):
        store.update_incident(incident_id, status="resolved")
    with pytest.raises(ValueError, match="P9"):
        store.update_incident(incident_id, severity="P9")
    with pytest.raises(ValueError, match="cannot be None"):
        store.update_incident(incident_id, title=None)
    with pytest.raises(NotFound):
        store.update_incident("nope", title="x")
    assert store.update_incident(incident_id).id == incident_id


# --- timeline --------------------------------------------------------------------------------------------


def test_timeline_in_time_order(store: Store) -> None:
    incident_id = _open(store)  # its "opened" entry is stamped now, after T0 + ...
    late = TimelineEntry(at=T0 + 2 * MIN, actor="runbook:service-down", kind="action", message="rollback")
    early = TimelineEntry(
        at=T0 + MIN,
        actor="runbook:service-down",
        kind="evidence",
        message="health: refused",
        evidence={"url": "https://emotionscare.com/health", "status": None},
        link="https://sentry.io/issues/1",
    )
    same = TimelineEntry(at=T0 + 2 * MIN, actor="slack", kind="message", message="status update")
    for entry in (late, early, same):
        assert store.append_timeline(incident_id, entry) == entry
    entries = store.timeline(incident_id)
    assert entries[:3] == [early, late, same]
    assert entries[3].kind == "opened"
    with pytest.raises(NotFound):
        store.append_timeline("nope", late)


# --- actions ---------------------------------------------------------------------------------------------


def test_claim_is_recorded_before_acting_and_won_once(store: Store) -> None:
    incident_id = _open(store)
    first = store.claim_action(incident_id, "rollback", TARGET, run_id="run-1", detail="revision 3 -> 2")
    assert first.won is True
    assert first.record.status == ActionStatus.CLAIMED and first.record.run_id == "run-1"
    assert first.record.key == f"{incident_id}:rollback:{TARGET}"
    second = store.claim_action(incident_id, "rollback", TARGET, run_id="run-2")
    assert second.won is False and second.record.run_id == "run-1"
    other = store.claim_action(incident_id, "scale", TARGET)
    assert other.won is True
    assert [a.action for a in store.list_actions(incident_id)] == ["rollback", "scale"]


def test_finish_action(store: Store) -> None:
    incident_id = _open(store)
    key = store.claim_action(incident_id, "rollback", TARGET, detail="planned").record.key
    done = store.finish_action(key, ActionStatus.SUCCEEDED, "revision 3 -> 2")
    assert (done.status, done.detail) == (ActionStatus.SUCCEEDED, "revision 3 -> 2")
    assert done.finished_at is not None and done.finished_at >= done.claimed_at
    assert store.get_action(key) == done
    assert store.finish_action(key, ActionStatus.SUCCEEDED).detail == "revision 3 -> 2"
    assert store.get_action("nope") is None
    with pytest.raises(NotFound):
        store.finish_action("nope", ActionStatus.FAILED)
    with pytest.raises(ValueError, match="final status"):
        store.finish_action(key, ActionStatus.CLAIMED)


def test_a_failed_action_is_retried_only_when_asked_and_only_once(store: Store) -> None:
    incident_id = _open(store)
    key = store.claim_action(incident_id, "rollback", TARGET).record.key
    store.finish_action(key, ActionStatus.FAILED, "409 conflict")
    assert store.claim_action(incident_id, "rollback", TARGET).won is False
    retry = store.claim_action(incident_id, "rollback", TARGET, run_id="run-2", retry_failed=True)
    assert (
        retry.won is True and retry.record.status == ActionStatus.CLAIMED and retry.record.finished_at is None
    )
    assert store.claim_action(incident_id, "rollback", TARGET, retry_failed=True).won is False
    store.finish_action(key, ActionStatus.SUCCEEDED)
    assert store.claim_action(incident_id, "rollback", TARGET, retry_failed=True).won is False


def test_claim_for_an_unknown_incident_is_refused(store: Store) -> None:
    with pytest.raises(NotFound):
        store.claim_action("nope", "rollback", TARGET)


# --- opening ---------------------------------------------------------------------------------------------


def test_open_store_from_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b.sqlite3'}"
    with open_store(StoreSettings(url=url)) as s:
        assert isinstance(s, SqliteStore) and s.path == tmp_path / "a" / "b.sqlite3"
    with open_store(Settings(store=StoreSettings(url=url))) as s:
        assert s.schema_version() == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:sekrit@h/db", "unsupported store URL 'mysql://u:**********@h/db'"),
        ("sqlite:///:memory:", "needs a file path"),
    ],
)
def test_open_store_refuses_what_it_cannot_serve(url: str, message: str) -> None:
    with pytest.raises(StoreFailed, match=re.escape(message)):
        open_store(url)


@pytest.mark.postgres
def test_unreachable_postgres_fails_fast_with_a_clear_error() -> None:
    from sandbox.postgres import free_port

    url = f"postgresql://runbook:sekrit@127.0.0.1:{free_port()}/x"
    with pytest.raises(StoreFailed, match=r"cannot connect to postgresql://runbook:\*+@127") as info:
        open_store(url, connect_timeout_s=1.0)
    assert "sekrit" not in str(info.value)


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    s.close()
    with pytest.raises(StoreFailed, match="closed"):
        s.list_incidents()


def test_sqlite_returns_the_connections_of_ended_threads(tmp_path: Path) -> None:
    import threading

    with open_store(f"sqlite:///{tmp_path / 't.sqlite3'}") as s:
        assert isinstance(s, SqliteStore)
        for _ in range(20):
            t = threading.Thread(target=s.list_incidents)
            t.start()
            t.join(10)
        pool = s.database.engine.pool
        assert pool.checkedout() == 0  # type: ignore[attr-defined]  # QueuePool: every connection back
