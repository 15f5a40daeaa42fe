"""Target leases (revision 0003) on both backends: one holder at a time, expiry frees a crashed holder's
target, renew and release only by the holder; recent changes per target for the budget."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from runbook.models import ActionStatus, Alert, AlertSource, utc_now
from runbook.severity import Severity
from runbook.store import Store

KEY = "k8s-a/prod/deployment/emotionscare"


def test_of_many_takers_exactly_one_holds_the_target(store: Store) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        leases = list(
            pool.map(lambda i: store.take_lease(KEY, f"run-{i}", 60, incident_id=f"i{i}"), range(16))
        )
    winners = [lease for lease in leases if lease.won]
    assert len(winners) == 1
    assert {lease.holder for lease in leases} == {winners[0].holder}  # the losers see who holds it


def test_a_held_lease_refuses_others_until_released_and_only_its_holder_renews_or_releases(
    store: Store,
) -> None:
    first = store.take_lease(KEY, "a", 60, incident_id="inc-a", purpose="rollback: revision 3 → 2")
    assert first.won and first.purpose == "rollback: revision 3 → 2"
    other = store.take_lease(KEY, "b", 60)
    assert not other.won and other.holder == "a" and other.incident_id == "inc-a"
    assert store.take_lease(KEY, "a", 60).won  # ours again (re-entry renews)
    assert not store.renew_lease(KEY, "b", 60) and not store.release_lease(KEY, "b")
    assert store.renew_lease(KEY, "a", 60)
    assert store.release_lease(KEY, "a") and store.get_lease(KEY) is None
    assert store.take_lease(KEY, "b", 60).won


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_renew_it(store: Store) -> None:
    crashed = store.take_lease(KEY, "crashed", 0.05)
    assert crashed.won
    from sandbox.testing import wait_for

    wait_for(lambda: utc_now() > crashed.expires_at, timeout_s=5, interval_s=0.01)
    assert store.take_lease(KEY, "next", 60).won
    assert not store.renew_lease(KEY, "crashed", 60)
    assert store.get_lease(KEY).holder == "next"  # type: ignore[union-attr]


def test_changes_per_target_count_every_incident_s_recent_writes_that_ran(store: Store) -> None:
    target = "prod/deployment/emotionscare"
    ids = []
    for n in range(3):
        alert = Alert(source=AlertSource.MANUAL, fingerprint=f"f{n}", name=f"n{n}")
        incident, _ = store.open_incident_for(alert, Severity.P1, "test", "service-down")
        ids.append(incident.id)
    done = store.claim_action(ids[0], "rollback", target)
    store.finish_action(done.record.key, ActionStatus.SUCCEEDED)
    store.claim_action(ids[1], "rollback", target)  # running now: counts
    failed = store.claim_action(ids[2], "rollback", target)
    store.finish_action(failed.record.key, ActionStatus.FAILED)  # changed nothing: does not count
    store.claim_action(ids[2], "scale", target)
    since = utc_now() - timedelta(hours=1)
    assert store.count_changes("rollback", target, since) == 2
    assert store.count_changes("scale", target, since) == 1
    assert store.count_changes("rollback", "other/deployment/x", since) == 0
    assert store.count_changes("rollback", target, utc_now() + timedelta(seconds=1)) == 0
