"""`Store.adopt_action`: a claim a dead run left unfinished passes to exactly one taker, on both backends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from runbook.errors import NotFound
from runbook.models import ActionStatus, Alert, AlertSource, utc_now
from runbook.severity import Severity
from runbook.store import Store


def _claimed_by(store: Store, run_id: str | None) -> str:
    alert = store.add_alert(Alert(source=AlertSource.MANUAL, fingerprint="adopt", name="ServiceDown"))
    incident, _ = store.open_incident_for(alert, Severity.P1, "test.rule", None)
    return store.claim_action(incident.id, "slack", "C0:assessment", run_id=run_id).record.key


def test_one_of_many_takers_wins_and_the_claim_names_it(store: Store) -> None:
    key = _claimed_by(store, "dead-run")
    with ThreadPoolExecutor(8) as pool:
        claims = list(
            pool.map(lambda n: store.adopt_action(key, "dead-run", f"run-{n}", "taken over"), range(8))
        )

    winners = [c for c in claims if c.won]
    assert len(winners) == 1
    record = store.get_action(key)
    assert record is not None and record.status == ActionStatus.CLAIMED
    assert record.run_id == winners[0].record.run_id and record.detail == "taken over"


@pytest.mark.parametrize("finished", [False, True], ids=["held-by-another-run", "finished"])
def test_a_claim_not_held_by_that_run_or_finished_is_not_taken(store: Store, finished: bool) -> None:
    key = _claimed_by(store, "run-a")
    if finished:
        store.finish_action(key, ActionStatus.SUCCEEDED)
        assert not store.adopt_action(key, "run-a", "run-b").won
    else:
        assert not store.adopt_action(key, "run-other", "run-b").won
    assert store.get_action(key).run_id == "run-a"  # type: ignore[union-attr]


def test_no_such_claim_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.adopt_action("nope:slack:x", "a", "b")


def test_a_claim_no_run_holds_is_taken_once_and_only_when_claimed_before_the_cutoff(store: Store) -> None:
    """Intake's sweeper claims with no run id: such a claim is taken when older than the caller's cutoff,
    by one of many takers; taking it makes it young again, so the losers (and a later taker) find it held."""
    key = _claimed_by(store, None)
    with pytest.raises(ValueError, match="claimed_before"):
        store.adopt_action(key, None, "run-b")
    assert not store.adopt_action(key, None, "run-b", claimed_before=utc_now() - timedelta(seconds=60)).won

    with pytest.raises(ValueError, match="future"):
        store.adopt_action(key, None, "run-b", claimed_before=utc_now() + timedelta(seconds=1))
    claimed_at = store.get_action(key).claimed_at  # type: ignore[union-attr]
    cutoff = claimed_at + timedelta(microseconds=1)  # the claim is older than this, and now is later
    with ThreadPoolExecutor(8) as pool:
        claims = list(
            pool.map(
                lambda n: store.adopt_action(key, None, None, f"taker {n}", claimed_before=cutoff), range(8)
            )
        )

    assert len([c for c in claims if c.won]) == 1
    record = store.get_action(key)
    assert record is not None and record.status == ActionStatus.CLAIMED and record.run_id is None
    assert record.detail is not None and record.detail.startswith("taker ")
    assert not store.adopt_action(key, None, "run-c", claimed_before=record.claimed_at).won
