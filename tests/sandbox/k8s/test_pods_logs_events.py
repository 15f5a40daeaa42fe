"""Pods, their logs and the cluster's events through the official client."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox.k8s import Cluster, ClusterServer
from sandbox.k8s.clock import ManualClock

from .support import IMAGE, NAME, NS


def _pods(core: client.CoreV1Api) -> list[client.V1Pod]:
    return core.list_namespaced_pod(NS, label_selector=f"app={NAME}").items


def test_pod_log_is_text_with_tail_since_timestamps_and_limit(
    cluster: Cluster, clock: ManualClock, server: ClusterServer, core: client.CoreV1Api
) -> None:
    pod = _pods(core)[0].metadata.name
    for i in range(5):
        cluster.append_pod_log(NS, pod, f"GET /api/health 200 request={i}")
    clock.advance(seconds=30)
    cluster.append_pod_log(NS, pod, "ERROR connection pool exhausted (DB_POOL_SIZE=20)")
    whole = core.read_namespaced_pod_log(pod, NS)
    assert isinstance(whole, str)
    assert server.requests[-1].path.endswith(f"/pods/{pod}/log")
    assert whole.splitlines()[0] == f"INFO starting {NAME} (image {IMAGE})"
    assert whole.endswith("ERROR connection pool exhausted (DB_POOL_SIZE=20)\n")
    assert core.read_namespaced_pod_log(pod, NS, tail_lines=2).splitlines() == [
        "GET /api/health 200 request=4",
        "ERROR connection pool exhausted (DB_POOL_SIZE=20)",
    ]
    assert core.read_namespaced_pod_log(pod, NS, since_seconds=10).splitlines() == [
        "ERROR connection pool exhausted (DB_POOL_SIZE=20)"
    ]
    stamped = core.read_namespaced_pod_log(pod, NS, container=NAME, timestamps=True, tail_lines=1)
    stamp = clock().strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    assert stamped == f"{stamp} ERROR connection pool exhausted (DB_POOL_SIZE=20)\n"
    assert core.read_namespaced_pod_log(pod, NS, limit_bytes=5) == "INFO "


def test_pod_log_errors(cluster: Cluster, core: client.CoreV1Api) -> None:
    pod = _pods(core)[0].metadata.name
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(pod, NS, container="sidecar")
    assert err.value.status == 400 and "container sidecar is not valid" in err.value.body
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(pod, NS, previous=True)
    assert err.value.status == 400 and "previous terminated container" in err.value.body
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("web-nope", NS)
    assert err.value.status == 404


def test_restart_keeps_the_previous_log_and_counts(cluster: Cluster, core: client.CoreV1Api) -> None:
    pod = _pods(core)[0].metadata.name
    cluster.append_pod_log(NS, pod, "WARN memory usage 97% of limit")
    cluster.append_pod_log(NS, pod, "FATAL JavaScript heap out of memory")
    cluster.restart_pod(NS, pod, reason="OOMKilled")
    previous = core.read_namespaced_pod_log(pod, NS, previous=True)
    assert previous.splitlines()[-1] == "FATAL JavaScript heap out of memory"
    assert "heap out of memory" not in core.read_namespaced_pod_log(pod, NS)
    status = core.read_namespaced_pod(pod, NS).status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.reason == "OOMKilled"
    assert status.last_state.terminated.exit_code == 137
    assert status.ready is True


def test_deleted_pod_is_recreated_by_its_replica_set(cluster: Cluster, core: client.CoreV1Api) -> None:
    before = {p.metadata.name for p in _pods(core)}
    victim = sorted(before)[0]
    deleted = core.delete_namespaced_pod(victim, NS)
    assert deleted.metadata.name == victim and deleted.metadata.deletion_timestamp is not None
    assert len(_pods(core)) == 1
    cluster.settle()
    after = {p.metadata.name for p in _pods(core)}
    assert len(after) == 2 and victim not in after
    new = (after - before).pop()
    assert core.read_namespaced_pod(new, NS).status.phase == "Running"
    created = core.list_namespaced_event(
        NS, field_selector="reason=SuccessfulCreate,involvedObject.kind=ReplicaSet"
    )
    assert f"Created pod: {new}" in [e.message for e in created.items]


def test_bad_image_crash_loops_with_climbing_restarts(
    cluster: Cluster, clock: ManualClock, core: client.CoreV1Api
) -> None:
    cluster.seed_deployment(NS, "worker", "registry.local/worker:2.0.0-bad", replicas=1)
    (pod,) = core.list_namespaced_pod(NS, label_selector="app=worker").items
    cs = pod.status.container_statuses[0]
    assert cs.state.waiting.reason == "CrashLoopBackOff"
    assert cs.ready is False and cs.last_state.terminated.exit_code == 1
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
    first = cs.restart_count
    clock.advance(seconds=11)
    cluster.tick()
    clock.advance(seconds=21)
    cluster.tick()
    cs = core.read_namespaced_pod(pod.metadata.name, NS).status.container_statuses[0]
    assert cs.restart_count == first + 2
    assert "application failed to start" in core.read_namespaced_pod_log(pod.metadata.name, NS, previous=True)
    backoffs = core.list_namespaced_event(
        NS, field_selector=f"involvedObject.name={pod.metadata.name},reason=BackOff,type=Warning"
    ).items
    assert len(backoffs) == 1 and backoffs[0].count == 3


def test_events_namespaced_and_cluster_wide_with_field_selectors(
    cluster: Cluster, core: client.CoreV1Api
) -> None:
    cluster.seed_deployment("staging", "web", IMAGE, replicas=1)
    ns_events = core.list_namespaced_event(NS).items
    assert ns_events and {e.metadata.namespace for e in ns_events} == {NS}
    everywhere = core.list_event_for_all_namespaces().items
    assert {e.metadata.namespace for e in everywhere} == {NS, "staging"}
    scaling = core.list_event_for_all_namespaces(
        field_selector="involvedObject.kind=Deployment,involvedObject.name=web,reason=ScalingReplicaSet"
    ).items
    assert len(scaling) == 2
    for e in scaling:
        assert e.type == "Normal" and e.source.component == "deployment-controller"
        assert e.count == 1 and e.first_timestamp == e.last_timestamp
        assert e.involved_object.api_version == "apps/v1"
    assert core.list_namespaced_event(NS, field_selector="type=Warning").items == []
    scheduled = core.list_namespaced_event(NS, field_selector="reason=Scheduled").items
    # the scheduler writes through events.k8s.io: no lastTimestamp, an eventTime instead
    assert scheduled and all(e.last_timestamp is None and e.event_time is not None for e in scheduled)
    # two hours ago, at the seeding time
    assert all(
        e.last_timestamp < cluster.now() - timedelta(hours=1) for e in scaling if e.metadata.namespace == NS
    )


def test_events_are_bounded(cluster: Cluster, core: client.CoreV1Api) -> None:
    cluster.max_events = 10
    dep = cluster.get("Deployment", NS, NAME)
    for i in range(15):
        cluster.record_event(dep, "Tested", f"event {i}")
    messages = [e.message for e in core.list_event_for_all_namespaces().items]
    assert len(messages) == 10
    assert "event 14" in messages and "event 4" not in messages
