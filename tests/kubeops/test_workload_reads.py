"""`deployment_logs`, `list_events`, `top_pods` and `top_nodes` against the emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kubectl_world import NS, T0, WEB, FakeClock, set_image
from kubernetes.client import ApiClient
from kubernetes.utils import parse_quantity

import kubeops
from kubeops.models import Workload
from sandbox.k8s import Cluster, ClusterServer

MiB = 1024 * 1024


def pod_names(cluster: Cluster) -> list[str]:
    return [p["metadata"]["name"] for p in cluster.deployment_pods(NS, "web")]


# --- logs -------------------------------------------------------------------------------------------------


def test_logs_come_from_the_pod_with_more_restarts_among_equals(
    api: ApiClient, cluster: Cluster, clock: FakeClock, server: ClusterServer
) -> None:
    _first, second = pod_names(cluster)  # created and Ready at the same instant
    clock.advance(30)
    cluster.restart_pod(NS, second, reason="OOMKilled")
    cluster.append_pod_log(NS, second, "ERROR java.lang.OutOfMemoryError: Java heap space")
    cluster.append_pod_log(NS, second, "INFO request served")

    logs = kubeops.deployment_logs(api, WEB, grep="outofmemory|heap")

    assert logs.pod == second and logs.container == "web"
    assert logs.lines[-2:] == ["ERROR java.lang.OutOfMemoryError: Java heap space", "INFO request served"]
    assert logs.matches == ["ERROR java.lang.OutOfMemoryError: Java heap space"]
    (request,) = [r for r in server.requests if r.path.endswith("/log")]
    assert request.path == f"/api/v1/namespaces/{NS}/pods/{second}/log"
    assert request.query == {"container": ["web"], "tailLines": ["100"]}
    previous = kubeops.deployment_logs(api, WEB, previous=True)
    assert previous.pod == second and previous.lines and previous.lines != logs.lines


def test_logs_prefer_the_pod_ready_longest_over_restarts(
    api: ApiClient, cluster: Cluster, clock: FakeClock
) -> None:
    original = set(pod_names(cluster))
    clock.advance(60)
    kubeops.scale(api, WEB, 3)
    cluster.settle(instant=True)
    (newcomer,) = set(pod_names(cluster)) - original
    cluster.restart_pod(NS, newcomer)  # more restarts, but Ready for less time: not chosen

    assert kubeops.deployment_logs(api, WEB).pod in original


def test_previous_logs_come_from_the_pod_killed_for_memory_not_kubectls_pick(
    api: ApiClient, cluster: Cluster, clock: FakeClock
) -> None:
    """After an OOM kill the restarted pod is Ready for less time, so kubectl's pick is another pod,
    which has no previous container: `--previous` reads the pod that was killed (the runbook's OOM
    evidence; resource_exhaustion failed a CI run on kubectl's pick)."""
    original = set(pod_names(cluster))
    clock.advance(60)
    kubeops.scale(api, WEB, 3)
    cluster.settle(instant=True)
    (newcomer,) = set(pod_names(cluster)) - original
    cluster.append_pod_log(NS, newcomer, "FATAL ERROR: Reached heap limit - JavaScript heap out of memory")
    cluster.restart_pod(NS, newcomer, reason="OOMKilled")
    assert kubeops.deployment_logs(api, WEB).pod in original  # kubectl's pick: Ready for longest

    previous = kubeops.deployment_logs(api, WEB, previous=True, grep="heap out of memory")

    assert previous.pod == newcomer
    assert previous.matches == ["FATAL ERROR: Reached heap limit - JavaScript heap out of memory"]


def test_logs_prefer_a_ready_pod_to_a_crash_looping_one(
    api: ApiClient, cluster: Cluster, clock: FakeClock
) -> None:
    original = set(pod_names(cluster))
    set_image(api, "registry.local/web:2.0.0-bad")
    for _ in range(20):
        clock.advance(5)
        cluster.tick()
    assert set(pod_names(cluster)) - original  # the crashing pods exist

    assert kubeops.deployment_logs(api, WEB).pod in original


def test_logs_tail_and_bad_input(api: ApiClient, cluster: Cluster) -> None:
    name = pod_names(cluster)[0]
    cluster.restart_pod(NS, name)  # more restarts: the pod kubectl chooses
    for i in range(150):
        cluster.append_pod_log(NS, name, f"line {i}")

    logs = kubeops.deployment_logs(api, WEB, tail_lines=100)
    assert logs.pod == name
    assert len(logs.lines) == 100 and logs.lines[-1] == "line 149"
    assert logs.matches == [] and logs.pattern is None
    assert len(kubeops.deployment_logs(api, WEB, tail_lines=None).lines) > 150

    with pytest.raises(ValueError, match="grep"):
        kubeops.deployment_logs(api, WEB, grep="(unclosed")
    with pytest.raises(ValueError, match="tail_lines"):
        kubeops.deployment_logs(api, WEB, tail_lines=-1)
    with pytest.raises(kubeops.ContainerNotFound, match="sidecar"):
        kubeops.deployment_logs(api, Workload(namespace=NS, name="web", container="sidecar"))


def test_logs_without_pods(api: ApiClient, cluster: Cluster) -> None:
    kubeops.scale(api, WEB, 0)
    cluster.settle(instant=True)
    with pytest.raises(kubeops.NoPodsFound, match='no pods found for deployment "web"'):
        kubeops.deployment_logs(api, WEB)


# --- events -----------------------------------------------------------------------------------------------


def test_events_are_sorted_by_last_seen_with_event_time_as_fallback(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    dep = cluster.get("Deployment", NS, "web")
    cluster.record_event(dep, "Aggregated", "seen twice", now=T0 + timedelta(seconds=5))
    cluster.record_event(dep, "Late", "third", type_="Warning", now=T0 + timedelta(seconds=30))
    cluster.record_event(dep, "Series", "eventTime only", now=T0 + timedelta(seconds=10), series_style=True)
    cluster.record_event(
        dep, "Aggregated", "seen twice", now=T0 + timedelta(seconds=40)
    )  # count 2, last 40 s
    cluster.record_event(dep, "Early", "first", now=T0 + timedelta(seconds=1))

    events = kubeops.list_events(api, NS, involved_name="web")

    ours = [e for e in events if e.last_seen is not None and e.last_seen >= T0]
    assert [e.reason for e in ours] == ["Early", "Series", "Late", "Aggregated"]
    assert [e.last_seen for e in ours] == [T0 + timedelta(seconds=s) for s in (1, 10, 30, 40)]
    assert ours[-1].count == 2 and ours[2].type == "Warning"
    assert all(e.name == "web" for e in events)
    assert events[: len(events) - len(ours)] == [e for e in events if e not in ours]  # older ones first
    request = [r for r in server.requests if r.path == f"/api/v1/namespaces/{NS}/events"][-1]
    assert request.query["fieldSelector"] == ["involvedObject.name=web"]

    newest = kubeops.list_events(api, NS, involved_name="web", limit=2)
    assert [e.reason for e in newest] == ["Late", "Aggregated"]
    with pytest.raises(ValueError, match="limit"):
        kubeops.list_events(api, NS, limit=0)


def test_events_of_the_whole_namespace(api: ApiClient) -> None:
    events = kubeops.list_events(api, NS, limit=500)
    assert {e.kind for e in events} >= {"Deployment", "ReplicaSet", "Pod"}
    seen = [e.last_seen for e in events]
    assert all(t is not None for t in seen)
    assert seen == sorted(seen)  # type: ignore[type-var]


# --- top --------------------------------------------------------------------------------------------------


def test_top_pods_sorts_by_memory_or_cpu_descending(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    hungry, busy = pod_names(cluster)
    cluster.set_pod_usage(NS, hungry, cpu_m=120, memory_bytes=480 * MiB)
    cluster.set_pod_usage(NS, busy, cpu_m=950, memory_bytes=150 * MiB)

    by_memory = kubeops.top_pods(api, NS, sort_by="memory")
    by_cpu = kubeops.top_pods(api, NS, sort_by="cpu")

    assert [(p.name, p.cpu_millicores, p.memory_bytes) for p in by_memory] == [
        (hungry, 120, 480 * MiB),
        (busy, 950, 150 * MiB),
    ]
    assert [p.name for p in by_cpu] == [busy, hungry]
    assert by_memory[0].containers[0].name == "web"
    paths = [r.path for r in server.requests]
    assert "/apis" in [p.rstrip("/") for p in paths]  # the discovery check
    assert f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods" in paths


def test_top_nodes_sorts_descending_with_percent_of_allocatable(api: ApiClient, cluster: Cluster) -> None:
    name = pod_names(cluster)[0]
    cluster.set_pod_usage(NS, name, cpu_m=1500, memory_bytes=3 * 1024 * MiB)

    nodes = kubeops.top_nodes(api, sort_by="cpu")

    assert len(nodes) == 2
    assert nodes[0].cpu_millicores >= nodes[1].cpu_millicores
    memory_order = kubeops.top_nodes(api, sort_by="memory")
    assert memory_order[0].memory_bytes >= memory_order[1].memory_bytes
    allocatable = {n["metadata"]["name"]: n["status"]["allocatable"] for n in cluster.list("Node")}
    for row in nodes:
        cpu_total = parse_quantity(allocatable[row.name]["cpu"]) * 1000
        assert row.cpu_pct == pytest.approx(float(row.cpu_millicores * 100 / cpu_total), abs=0.05)
        assert row.memory_pct is not None and 0 < row.memory_pct < 100
