"""Exactly one winner under concurrency, on both backends: 50 threads, then 50 separate processes.

Every caller waits at a barrier and then, at the same moment, claims the same (incident, action,
target) and reports an alert with the same dedupe key. Exactly one claim may win; exactly one incident
may be created, counting all 50 alerts.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import store_workers

from runbook.models import Alert, AlertSource
from runbook.severity import Severity
from runbook.store import Store, open_store

N = 50
TIMEOUT_S = 60.0
TARGET = "prod/deployment/emotionscare"


def _incident(store: Store) -> str:
    alert = store.add_alert(Alert(source=AlertSource.MANUAL, fingerprint="claims", name="ServiceDown"))
    incident, _ = store.open_incident_for(alert, Severity.P1, "p1.service_unavailable", "service-down")
    return incident.id


def _check(store: Store, incident_id: str, claims_won: int, created: int) -> None:
    assert claims_won == 1
    assert created == 1
    actions = store.list_actions(incident_id)
    assert [(a.action, a.target) for a in actions] == [("rollback", TARGET)]
    storm = store.find_open_incident("storm")
    assert storm is not None and storm.alert_count == N
    assert len(store.list_alerts(incident_id=storm.id)) == N
    assert len([i for i in store.list_incidents(limit=1000) if i.dedupe_key == "storm"]) == 1


def test_threads_one_winner(store: Store) -> None:
    incident_id = _incident(store)
    barrier = threading.Barrier(N)

    def race(_: int) -> tuple[bool, bool]:
        alert = store.add_alert(Alert(source=AlertSource.DRILL, fingerprint="storm", name="ServiceDown"))
        barrier.wait(TIMEOUT_S)
        claim = store.claim_action(incident_id, "rollback", TARGET)
        _, created = store.open_incident_for(alert, Severity.P1, "p1.service_unavailable", "service-down")
        return claim.won, created

    with ThreadPoolExecutor(max_workers=N) as pool:
        results = list(pool.map(race, range(N), timeout=TIMEOUT_S))
    _check(store, incident_id, sum(w for w, _ in results), sum(c for _, c in results))


@pytest.fixture(scope="module")
def process_context() -> Iterator[multiprocessing.context.ForkServerContext]:
    """Separate processes, started from a clean forkserver with the imports already done.

    Like 'spawn', a forkserver child inherits nothing of the test process (no threads, connections or
    stores: the server is a fresh interpreter); each child opens its own store from the URL. Unlike
    'spawn', the 50 children do not each import pydantic and psycopg: measured on 2 cores, 50 spawned
    children took 12-22 s per backend before the race even began, these take about 1.5 s.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["store_workers", "runbook.store", "psycopg", "psycopg_pool"])
    yield ctx
    from multiprocessing import forkserver

    forkserver._forkserver._stop()  # leave no process behind (it would otherwise live until pytest exits)


def test_processes_one_winner(
    store_url: str, process_context: multiprocessing.context.ForkServerContext
) -> None:
    """50 separate processes, each opening its own store from the URL, race at a barrier."""
    with open_store(store_url) as store:
        incident_id = _incident(store)
    ctx = process_context
    barrier = ctx.Barrier(N)
    procs = [
        ctx.Process(target=store_workers.race, args=(store_url, incident_id, barrier, TIMEOUT_S))
        for _ in range(N)
    ]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(TIMEOUT_S)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
    codes = [p.exitcode for p in procs]
    assert all(c is not None and store_workers.BASE <= c <= store_workers.BASE + 3 for c in codes), codes
    outcomes = [c - store_workers.BASE for c in codes if c is not None]
    with open_store(store_url) as store:
        _check(store, incident_id, sum(o >> 1 for o in outcomes), sum(o & 1 for o in outcomes))
