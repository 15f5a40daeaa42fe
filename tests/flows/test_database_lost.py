"""P1 › Database Connection Lost, against the sandbox's real PostgreSQL, service and cluster."""

from __future__ import annotations

import httpx

from flows.database_lost import MANUAL_STEPS, database_lost
from runbook.models import ActionStatus, RunbookOutcome
from sandbox.httpserver import Response
from tasks import runtime

FAST = dict(verify_deadline_s=5.0, ready_deadline_s=15.0, db_restart_deadline_s=15.0, poll_interval_s=0.05)


def _acted(result) -> list[tuple[str, ActionStatus]]:
    return [(a.action, a.status) for a in result.actions]


def test_a_stale_pool_is_recovered_by_option_1_the_pool_reset(world) -> None:
    world.inject("db-pool-stale")
    assert httpx.get(world.service.url + "/api/health").status_code == 500
    generation = world.service.db.generation
    revision = world.revision()

    result = database_lost(**FAST)

    assert result.outcome == RunbookOutcome.RECOVERED, result.summary
    assert _acted(result) == [("reset-db-pool", ActionStatus.SUCCEEDED)]
    assert world.service.db.generation == generation + 1  # the app built a new pool
    assert world.revision() == revision  # option 2 was not needed: no rollout
    assert httpx.get(world.service.url + "/api/health").status_code == 200
    assert "SELECT 1" in next(e.message for e in result.timeline if e.kind == "assess")


def test_an_exhausted_pool_needs_option_2_the_pool_size(world) -> None:
    world.inject("db-pool-exhausted", size=2)
    assert world.live_env()["DB_POOL_SIZE"] == "2"
    revision = world.revision()

    result = database_lost(**FAST)

    assert result.outcome == RunbookOutcome.RECOVERED, result.summary
    assert _acted(result) == [
        ("reset-db-pool", ActionStatus.SUCCEEDED),  # option 1 rebuilt the same small pool: not enough
        ("set-pool-size", ActionStatus.SUCCEEDED),
    ]
    assert world.live_env()["DB_POOL_SIZE"] == "10"
    assert world.revision() == revision + 1  # set env rolled the pods
    assert world.service.db.size == 10
    assert httpx.get(world.service.url + "/api/health").status_code == 200


def test_postgresql_down_is_restarted_through_the_provider_then_the_pool_reset(world) -> None:
    world.inject("db-down")
    assert not world.postgres.running

    result = database_lost(**FAST)

    assert result.outcome == RunbookOutcome.RECOVERED, result.summary
    assert next(a for a, _ in _acted(result)) == "restart-database"
    assert world.postgres.running
    assert httpx.get(world.service.url + "/api/health").status_code == 200
    assessed = next(e.message for e in result.timeline if e.kind == "assess")
    assert "refused" in assessed


def test_postgresql_staying_down_escalates_with_the_manual_steps(world) -> None:
    world.inject("db-down")
    # the provider's restart fails (its API answers 503 to every restart)
    world.provider.server.inject(
        count=100,
        response=Response.json({"message": "service unavailable"}, status=503),
        matches=lambda r: r.path.endswith("/restart"),
    )

    result = database_lost(**FAST)

    assert result.outcome == RunbookOutcome.ESCALATED, result.summary
    assert not world.postgres.running
    assert ("restart-database", ActionStatus.FAILED) in _acted(result)
    assert [a for a, _ in _acted(result)] == ["restart-database"]  # the pool options cannot help
    assert any(e.content == MANUAL_STEPS for e in result.evidence)


def test_postgresql_down_with_no_provider_configured_escalates_untouched(
    world, sandbox_state, monkeypatch
) -> None:
    monkeypatch.delenv("RUNBOOK_DATABASE_SUPABASE_PROJECT_REF")
    runtime.reset()
    world.inject("db-down")
    before = sandbox_state()

    result = database_lost(**FAST)

    assert result.outcome == RunbookOutcome.ESCALATED
    assert result.actions == []  # nothing could help a stopped database; nothing was tried
    assert sandbox_state() == before
    assert "no provider API configured" in " ".join(e.message for e in result.timeline)


def test_a_second_run_for_the_same_incident_does_not_reset_again(world) -> None:
    from runbook.models import IncidentRef

    world.inject("db-pool-stale")
    first = database_lost(**FAST)
    world.inject("db-pool-stale")  # the same incident flares up again

    second = database_lost(incident=IncidentRef(incident_id=first.incident_id), **FAST)

    # each action at most once per incident: the reset is refused, the next option is taken instead
    assert _acted(second) == [
        ("reset-db-pool", ActionStatus.REFUSED),
        ("set-pool-size", ActionStatus.SUCCEEDED),
    ]
    resets = [a for a in runtime.store().list_actions(first.incident_id) if a.action == "reset-db-pool"]
    assert len(resets) == 1
    assert second.outcome == RunbookOutcome.RECOVERED
