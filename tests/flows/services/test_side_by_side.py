"""Issue 12's acceptance: two incidents at once, on two services on two clusters → both rolled back, each by
requests to its own cluster's Kubernetes API only (counted at each emulator), within the same minute."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

from flows.service_down import service_down
from runbook.models import IncidentRef, RunbookOutcome
from runbook.severity import Severity
from sandbox.world import GOOD_IMAGE

from .support import WRITES, World, requests_of

FAST = {"settle_s": 0.0, "poll_interval_s": 0.05, "ready_deadline_s": 20.0}


def test_two_services_on_two_clusters_are_rolled_back_side_by_side(many_world: World) -> None:
    world = many_world
    east, west = world.unit("emotionscare"), world.unit("search")
    assert east.cluster_name != west.cluster_name
    for unit in (east, west):
        world.inject("bad-deploy", service=unit.name, ago_min=2)
    for server in world.clusters.values():
        server.clear_requests()

    results: dict[str, Any] = {}
    finished: dict[str, float] = {}

    def run(name: str) -> None:
        ref = IncidentRef(service=name, severity=Severity.P1, summary=f"{name} down")
        results[name] = service_down(incident=ref, **FAST)
        finished[name] = time.monotonic()

    began = time.monotonic()
    threads = [
        # each thread with the test's context: the Prefect test server's settings live in a context variable
        threading.Thread(target=contextvars.copy_context().run, args=(run, unit.name))
        for unit in (east, west)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert {n: r.outcome for n, r in results.items()} == {
        "emotionscare": RunbookOutcome.ROLLED_BACK,
        "search": RunbookOutcome.ROLLED_BACK,
    }, {n: r.summary for n, r in results.items()}
    assert east.live_image() == GOOD_IMAGE and west.live_image().endswith(GOOD_IMAGE.rsplit(":", 1)[1])
    assert max(finished.values()) - began < 60  # both within the same minute
    for unit, other in ((east, west), (west, east)):
        seen = requests_of(world.clusters[unit.cluster_name])
        writes = [(m, p) for m, p in seen if m in WRITES]
        assert writes and all(f"/namespaces/{unit.namespace}/" in p for _, p in writes), writes
        assert not [p for _, p in seen if f"/namespaces/{other.namespace}/" in p]
