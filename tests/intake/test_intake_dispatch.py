"""Dispatch against a real Prefect server (prefect_test_harness): one `respond` run per incident, always.

The heavy tests of the intake (one harness for the session, `prefect_api` in conftest):
- runs are created once per incident, their ids stored on the incidents, with the IncidentRef parameters;
- a crash between the run's creation and its recording, and two dispatchers racing on expired leases,
  still give one run per incident (Prefect's idempotency key `respond/respond:<incident id>`);
- Prefect unreachable: the row is kept, retried after a backoff, dispatched once Prefect answers;
- end to end: alerts accepted (202) while no dispatcher runs, then an intake "restart" with its
  dispatcher thread dispatches them without any further request.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from intake.app import create_app
from intake.config import DispatchConfig, IntakeConfig
from intake.dispatch import Dispatcher, idempotency_key
from intake.ingest import StoreIngestor
from intake.metrics import IntakeMetrics
from intake.outbox import Outbox, OutboxItem
from intake.parsers import parse
from sandbox.testing import wait_for

DATA = Path(__file__).resolve().parents[1] / "data"


def runs_of(incident_ids: set[str]) -> dict[str, list[str]]:
    """Flow runs on the server of the `respond/respond` deployment, per incident id in their parameters."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("respond/respond")
        found: dict[str, list[str]] = {}
        for run in client.read_flow_runs(limit=200):
            if run.deployment_id != deployment.id:
                continue
            incident_id = run.parameters["incident_id"]
            if incident_id in incident_ids:
                found.setdefault(incident_id, []).append(str(run.id))
        return found


def row_of(outbox: Outbox, incident_id: str) -> OutboxItem:
    item = outbox.get(incident_id)
    assert item is not None, f"no outbox row for {incident_id}"
    return item


def config_for(api_url: str, **dispatch: Any) -> DispatchConfig:
    return DispatchConfig(api_url=api_url, rate_per_s=1000, burst=100, request_timeout_s=10, **dispatch)


def ingest(
    store: Any, outbox: Outbox, config: IntakeConfig, fixture: str, source: str = "alertmanager"
) -> set[str]:
    body = (DATA / fixture).read_bytes()
    receipt = StoreIngestor(store, outbox, config).ingest(
        source, body, {}, parse(source, body, config.parse_context())
    )
    return set(receipt.created)


def test_one_run_per_incident_with_its_id_on_the_incident(
    prefect_api: str, intake_config: IntakeConfig, store: Any, outbox: Outbox
) -> None:
    incidents = ingest(store, outbox, intake_config, "alertmanager_group_3_firing_1_resolved.json")
    metrics = IntakeMetrics()

    handled = Dispatcher(outbox, store, config_for(prefect_api), metrics).run_once()

    assert handled == 3
    runs = runs_of(incidents)
    assert {k: len(v) for k, v in runs.items()} == {i: 1 for i in incidents}
    for incident_id in incidents:
        incident = store.get_incident(incident_id)
        assert incident.flow_run_id == runs[incident_id][0]
        assert any(e.kind == "dispatch" for e in store.timeline(incident_id))
        assert row_of(outbox, incident_id).flow_run_id == incident.flow_run_id
    assert outbox.depth() == 0
    assert metrics.dispatch.labels(outcome="dispatched")._value.get() == 3
    # Nothing left: a second pass starts nothing.
    assert Dispatcher(outbox, store, config_for(prefect_api)).run_once() == 0


class _CrashOnceAfterCreation:
    """The real store, except that recording the run id fails once (a crash right after creation)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def update_incident(self, incident_id: str, **fields: Any) -> Any:
        if not self.crashed:
            self.crashed = True
            raise ConnectionError("store went away after the run was created")
        return self.store.update_incident(incident_id, **fields)


def test_a_crash_after_creating_the_run_does_not_create_a_second_one(
    prefect_api: str, intake_config: IntakeConfig, store: Any, outbox: Outbox
) -> None:
    [incident_id] = ingest(store, outbox, intake_config, "alertmanager_probe_failure.json")
    flaky = _CrashOnceAfterCreation(store)
    dispatcher = Dispatcher(
        outbox, flaky, config_for(prefect_api, backoff_initial_s=0.01, backoff_max_s=0.02)
    )

    dispatcher.run_once()
    assert row_of(outbox, incident_id).attempts == 1
    assert store.get_incident(incident_id).flow_run_id is None
    assert wait_for(lambda: dispatcher.run_once() == 1, 5.0)  # the retry, once its backoff has passed

    [run_id] = runs_of({incident_id})[incident_id]
    assert store.get_incident(incident_id).flow_run_id == run_id


def test_two_dispatchers_racing_on_expired_leases_start_one_run_per_incident(
    prefect_api: str, intake_config: IntakeConfig, store: Any, outbox: Outbox
) -> None:
    incidents = ingest(store, outbox, intake_config, "alertmanager_group_3_firing_1_resolved.json")
    incidents |= ingest(store, outbox, intake_config, "grafana_firing.json", source="grafana")
    # Leases that expire at once: both replicas claim the same rows and both call Prefect.
    replicas = [
        Dispatcher(outbox, store, config_for(prefect_api, lease_s=0.001), owner=f"replica-{n}")
        for n in (1, 2)
    ]
    barrier = threading.Barrier(2)
    results: list[int] = []

    def work(d: Dispatcher) -> None:
        barrier.wait(10)
        results.append(d.run_once())

    threads = [threading.Thread(target=work, args=(d,)) for d in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert sum(results) >= len(incidents)
    runs = runs_of(incidents)
    assert {k: len(v) for k, v in runs.items()} == {i: 1 for i in incidents}
    assert all(store.get_incident(i).flow_run_id == runs[i][0] for i in incidents)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prefect_unreachable_keeps_the_work_and_dispatches_when_it_is_back(
    prefect_api: str, intake_config: IntakeConfig, store: Any, outbox: Outbox
) -> None:
    [incident_id] = ingest(store, outbox, intake_config, "generic_firing.json", source="generic")
    down = f"http://127.0.0.1:{_closed_port()}/api"
    metrics = IntakeMetrics()
    before = time.time()

    Dispatcher(outbox, store, config_for(down, backoff_initial_s=30, backoff_max_s=60), metrics).run_once()

    row = row_of(outbox, incident_id)
    assert row.attempts == 1 and row.dispatched_at is None
    assert row.last_error
    assert before + 15 <= row.next_attempt_at <= time.time() + 30  # equal jitter: 15-30 s for attempt 1
    assert metrics.dispatch.labels(outcome="failed")._value.get() == 1
    assert store.get_incident(incident_id).flow_run_id is None
    # Not due yet: nothing happens, even with Prefect back.
    assert Dispatcher(outbox, store, config_for(prefect_api)).run_once() == 0

    outbox.clock = lambda: time.time() + 60  # the backoff has passed
    assert Dispatcher(outbox, store, config_for(prefect_api)).run_once() == 1
    [run_id] = runs_of({incident_id})[incident_id]
    assert store.get_incident(incident_id).flow_run_id == run_id


def test_accepted_alerts_are_dispatched_after_a_restart_by_the_background_thread(
    prefect_api: str, intake_config: IntakeConfig, store: Any, outbox: Outbox, serve: Any
) -> None:
    body = (DATA / "alertmanager_group_3_firing_1_resolved.json").read_bytes()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer am-token"}

    # 1. An intake without a dispatcher (Prefect "down" for it): 202, kept in the outbox.
    without = create_app(intake_config, StoreIngestor(store, outbox, intake_config))
    with serve(without) as url:
        created = httpx.post(f"{url}/alerts/alertmanager", content=body, headers=headers).json()[
            "incidents_created"
        ]
    assert outbox.depth() == 3

    # 2. "Restart": an intake with its dispatcher thread; nobody sends anything more.
    dispatcher = Dispatcher(outbox, store, config_for(prefect_api, idle_poll_s=0.05))
    ingestor = StoreIngestor(store, outbox, intake_config, on_enqueued=dispatcher.wake)
    with serve(create_app(intake_config, ingestor, background=lambda: dispatcher)) as url:
        assert wait_for(lambda: outbox.depth() == 0, 20.0), outbox.depth()
        # 3. A new alert while it runs is dispatched at once (woken, not polled).
        fresh = (DATA / "generic_firing.json").read_bytes()
        answer = httpx.post(
            f"{url}/alerts/generic",
            content=fresh,
            headers={"Content-Type": "application/json", "Authorization": "Bearer gen-token"},
        )
        [new_incident] = answer.json()["incidents_created"]
        assert wait_for(lambda: store.get_incident(new_incident).flow_run_id is not None, 10.0)
    assert dispatcher.error is None

    runs = runs_of({*created, new_incident})
    assert {k: len(v) for k, v in runs.items()} == {i: 1 for i in {*created, new_incident}}
    assert idempotency_key("respond/respond", new_incident) == f"respond/respond:{new_incident}"
