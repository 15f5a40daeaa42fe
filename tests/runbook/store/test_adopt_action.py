"""`Store.adopt_action`: a claim a dead run left unfinished passes to exactly one taker, on both backends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from runbook.errors import NotFound
from runbook.models import ActionStatus, Alert, AlertSource
from runbook.severity import Severity
from runbook.store import Store


def _claimed_by(store: Store, run_id: str) -> str:
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
