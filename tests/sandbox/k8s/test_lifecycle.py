"""The emulator's life: start cost, background ticks, subscribers, kubeconfig, and a clean stop
(no thread, connection or port left behind)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client, config, watch

from sandbox.k8s import Change, Cluster, kubeconfig, serve_cluster
from sandbox.k8s.clock import ManualClock
from sandbox.testing import wait_for

from .support import IMAGE, NAME, NS, T0


def _emulator_threads() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name.startswith("k8s-emulator") or "process_request" in t.name
    ]


def test_start_cost_and_clean_stop() -> None:
    started = time.perf_counter()
    cluster = Cluster()
    cluster.seed_deployment(NS, NAME, IMAGE, replicas=2)
    server = serve_cluster(cluster, tick_interval_s=0.05)
    start_s = time.perf_counter() - started
    print(f"\nemulator start (Cluster + seed of 2 pods + server): {start_s * 1000:.1f} ms")
    assert start_s < 0.5
    api = client.ApiClient(client.Configuration(host=server.url))
    try:
        assert client.AppsV1Api(api).read_namespaced_deployment(NAME, NS).status.ready_replicas == 2
        # a watch is open while the server stops: it must end, not hang
        events: list[str] = []

        def watch_deployments() -> None:
            for event in watch.Watch().stream(
                client.AppsV1Api(api).list_namespaced_deployment, NS, timeout_seconds=30
            ):
                events.append(event["type"])

        watcher = threading.Thread(target=watch_deployments, name="test-watcher")
        watcher.start()
        wait_for(lambda: events == ["ADDED"])
        stopped = time.perf_counter()
        server.stop()
        stop_s = time.perf_counter() - stopped
        watcher.join(timeout=5)
        assert not watcher.is_alive()
    finally:
        api.close()
    assert stop_s < 2
    assert _emulator_threads() == []
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection((server.host, server.port), timeout=1),
    ):
        pass


def test_background_ticks_roll_out_with_a_pod_start_delay() -> None:
    cluster = Cluster(pod_start_delay_s=0.2)
    cluster.seed_deployment(NS, NAME, IMAGE, replicas=2)
    with serve_cluster(cluster, tick_interval_s=0.02):
        cluster.apply_patch(
            "Deployment", NS, NAME, {"spec": {"template": {"metadata": {"labels": {"v": "2"}}}}}
        )
        pending = wait_for(
            lambda: [p for p in cluster.deployment_pods(NS, NAME) if p["status"]["phase"] == "Pending"]
        )
        (pod,) = pending  # type: ignore[misc]
        waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
        assert waiting == {"reason": "ContainerCreating"}
        wait_for(
            lambda: (
                cluster.get("Deployment", NS, NAME)["status"].get("updatedReplicas") == 2
                and len(cluster.ready_pods(NS, NAME)) == 2
                and len(cluster.deployment_pods(NS, NAME)) == 2
            )
        )
    assert {p["metadata"]["labels"]["v"] for p in cluster.ready_pods(NS, NAME)} == {"2"}


def test_subscribers_hear_every_write_outside_the_lock() -> None:
    clock = ManualClock(T0)
    cluster = Cluster(clock=clock)
    changes: list[Change] = []
    reads: list[int] = []

    def on_change(change: Change) -> None:
        changes.append(change)
        if change.kind == "Deployment":
            # calling back into the cluster from a subscriber is allowed
            reads.append(len(cluster.list("Pod", NS)))

    unsubscribe = cluster.subscribe(on_change)
    cluster.seed_deployment(NS, NAME, IMAGE, replicas=2)
    kinds = {(c.type, c.kind) for c in changes}
    assert {("ADDED", "Deployment"), ("ADDED", "ReplicaSet"), ("ADDED", "Pod"), ("MODIFIED", "Pod")} <= kinds
    assert [int(c.object["metadata"]["resourceVersion"]) for c in changes] == sorted(
        int(c.object["metadata"]["resourceVersion"]) for c in changes
    )
    assert reads and reads[-1] == 2
    unsubscribe()
    count = len(changes)
    cluster.apply_patch("Deployment", NS, NAME, {"spec": {"replicas": 3}})
    assert len(changes) == count


def test_a_failing_subscriber_does_not_break_the_cluster(caplog: pytest.LogCaptureFixture) -> None:
    cluster = Cluster()

    def broken(change: Change) -> None:
        raise RuntimeError("subscriber bug")

    cluster.subscribe(broken)
    cluster.seed_deployment(NS, NAME, IMAGE, replicas=1)
    assert len(cluster.ready_pods(NS, NAME)) == 1
    assert "subscriber" in caplog.text and "subscriber bug" in caplog.text


def test_kubeconfig_works_with_load_kube_config(tmp_path: Path) -> None:
    cluster = Cluster()
    cluster.seed_deployment(NS, NAME, IMAGE, replicas=1)
    with serve_cluster(cluster, tick_interval_s=0) as server:
        path = kubeconfig(server.url, tmp_path / "kube" / "config", namespace=NS)
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(path), client_configuration=cfg)
        assert cfg.host == server.url
        _, active = config.list_kube_config_contexts(config_file=str(path))
        assert active["context"]["namespace"] == NS
        with client.ApiClient(cfg) as api:
            assert client.AppsV1Api(api).read_namespaced_deployment(NAME, NS).metadata.name == NAME
        assert path.stat().st_mode & 0o777 == 0o600
