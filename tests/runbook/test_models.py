"""Domain models: validation, the status transition table, JSON round trips."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from runbook.errors import IllegalTransition, RunbookError
from runbook.models import (
    TRANSITIONS,
    ActionRecord,
    Alert,
    AlertSource,
    AlertStatus,
    Incident,
    IncidentRef,
    IncidentStatus,
    RunbookOutcome,
    RunbookResult,
    Signals,
    TimelineEntry,
    action_key,
    next_status,
)
from runbook.severity import Severity

T, A, M, R = (
    IncidentStatus.TRIGGERED,
    IncidentStatus.ACKNOWLEDGED,
    IncidentStatus.MITIGATED,
    IncidentStatus.RESOLVED,
)
ALLOWED = {(T, A), (T, M), (T, R), (A, M), (A, R), (M, R)}


@pytest.mark.parametrize("current", list(IncidentStatus))
@pytest.mark.parametrize("requested", list(IncidentStatus))
def test_transition_table(current: IncidentStatus, requested: IncidentStatus) -> None:
    if current == requested:
        assert next_status(current, requested) is False  # a retried ack is a no-op
    elif (current, requested) in ALLOWED:
        assert next_status(current, requested) is True
    else:
        with pytest.raises(IllegalTransition) as info:
            next_status(current, requested)
        assert isinstance(info.value, RunbookError)
        assert str(info.value) == f"illegal incident transition {current} -> {requested}"


def test_resolved_is_final() -> None:
    assert TRANSITIONS[R] == frozenset()


def test_signals_are_validated_and_reject_unknown_names() -> None:
    with pytest.raises(ValidationError):
        Signals(error_rate_pct=101)
    with pytest.raises(ValidationError):
        Signals(p95_latency_ms=-1)
    with pytest.raises(ValidationError):
        Signals(error_rate=5)  # type: ignore[call-arg]
    assert Signals(error_rate_pct=6, service_reachable=True).observed() == {
        "error_rate_pct": 6.0,
        "service_reachable": True,
    }


def test_alert_defaults_and_validation() -> None:
    alert = Alert(source=AlertSource.ALERTMANAGER, fingerprint="fp", name="ServiceDown")
    assert alert.status is AlertStatus.FIRING
    assert len(alert.id) == 32 and alert.received_at.tzinfo is not None
    assert alert.summary == "ServiceDown"
    assert Alert(source="sentry", fingerprint="f", name="n", annotations={"summary": "s"}).summary == "s"
    with pytest.raises(ValidationError):
        Alert(source="nagios", fingerprint="fp", name="x")
    with pytest.raises(ValidationError):
        Alert(source="generic", fingerprint="", name="x")
    with pytest.raises(ValidationError):  # naive datetimes are refused: every time is aware
        Alert(source="generic", fingerprint="f", name="x", starts_at=datetime(2025, 11, 14, 14, 8))


def test_models_round_trip_as_json() -> None:
    at = datetime(2025, 11, 14, 14, 8, tzinfo=UTC)
    incident = Incident(
        dedupe_key="k",
        title="High Error Rate (6%)",
        severity=Severity.P2,
        severity_rule="p2.error_rate_gt_5",
        started_at=at,
        timeline=[TimelineEntry(at=at, actor="intake", kind="alert", message="fired", evidence={"n": 1})],
    )
    assert Incident.model_validate_json(incident.model_dump_json()) == incident
    assert incident.is_open and incident.status is T and incident.alert_count == 1
    record = ActionRecord(
        key=action_key("i1", "rollback", "prod/deployment/emotionscare"),
        incident_id="i1",
        action="rollback",
        target="prod/deployment/emotionscare",
    )
    assert record.key == "i1:rollback:prod/deployment/emotionscare"
    result = RunbookResult(
        runbook="service-down",
        outcome=RunbookOutcome.ROLLED_BACK,
        summary="rolled back",
        actions=[record],
        started_at=at,
    )
    assert RunbookResult.model_validate_json(result.model_dump_json()) == result


def test_incident_ref_defaults_are_a_usable_form() -> None:
    ref = IncidentRef()
    assert (ref.incident_id, ref.service, ref.severity) == (None, "emotionscare", Severity.P1)
