"""`rollout_facts` (when each revision became live, its Ready pods, since when the Deployment is Available)
and `rollout_undo(expect_revision=N)` (the write conditional on the live revision), against the emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kubectl_world import IMAGE_1, T0, WEB, FakeClock, deploy, deployment, running_image, set_image
from kubernetes.client import ApiClient

import kubeops
import kubeops.rollout as rollout
from kubeops.rollout import RevisionChanged, rollout_facts
from sandbox.k8s import Cluster, ClusterServer

IMAGE_2 = "registry.local/web:2.0.0"
IMAGE_3 = "registry.local/web:3.0.0"


def test_a_release_deployed_again_reads_as_deployed_when_it_became_live_not_when_created(
    api: ApiClient, cluster: Cluster, clock: FakeClock
) -> None:
    clock.advance(60)
    deploy(api, cluster, IMAGE_2)  # revision 2, its ReplicaSet created at T0+60s
    clock.advance(3600)
    deploy(api, cluster, IMAGE_1)  # revision 3: the first ReplicaSet again
    clock.advance(600)
    deploy(api, cluster, IMAGE_2)  # revision 4: the 2.0.0 ReplicaSet again, an hour after it was made

    facts = rollout_facts(api, WEB)

    live = facts.live
    assert live is not None and live.revision == 4 and live.images == [IMAGE_2]
    assert live.created_at == T0 + timedelta(seconds=60)
    assert live.deployed_at == T0 + timedelta(seconds=4260)  # the scale-up from 0 just now
    assert live.within(timedelta(minutes=15), now=clock.now())
    older = {r.revision: r for r in facts.revisions}[3]
    assert older.deployed_at == T0 + timedelta(seconds=3660) and older.ready_replicas == 0
    assert older.template_hash is not None and older.replica_set.endswith(older.template_hash)
    assert facts.live_revision == 4
    assert facts.available_since is not None and facts.available_since <= T0


def test_without_a_scale_up_event_the_creation_time_is_the_deploy_time(
    api: ApiClient, cluster: Cluster, clock: FakeClock
) -> None:
    clock.advance(60)
    deploy(api, cluster, IMAGE_2)
    for event in cluster.list("Event", WEB.namespace):  # expired, as the API server's --event-ttl does
        cluster.store.remove("Event", WEB.namespace, event["metadata"]["name"])

    live = rollout_facts(api, WEB).live

    assert live is not None and live.deployed_at == live.created_at == T0 + timedelta(seconds=60)


def test_ready_pods_of_an_older_revision_are_reported_during_a_stuck_rollout(
    api: ApiClient, cluster: Cluster, clock: FakeClock
) -> None:
    set_image(api, "registry.local/web:bad")  # its pods never become Ready
    for _ in range(5):
        clock.advance(5)
        cluster.tick()

    facts = rollout_facts(api, WEB)

    by_revision = {r.revision: r for r in facts.revisions}
    assert by_revision[1].ready_replicas == 2 and by_revision[2].ready_replicas == 0


def test_undo_with_an_expected_revision_refuses_when_the_live_one_differs(
    api: ApiClient, cluster: Cluster, clock: FakeClock, server: ClusterServer
) -> None:
    deploy(api, cluster, IMAGE_2)
    deploy(api, cluster, IMAGE_3)  # live: revision 3
    server.clear_requests()

    with pytest.raises(RevisionChanged, match="is at revision 3, not 2") as caught:
        kubeops.rollout_undo(api, WEB, to_revision=1, expect_revision=2)

    assert caught.value.live_revision == 3
    assert not [r for r in server.requests if r.method == "PATCH"]
    assert running_image(cluster) == IMAGE_3


def test_undo_with_an_expected_revision_is_refused_by_the_server_when_it_moved_after_the_read(
    api: ApiClient, cluster: Cluster, clock: FakeClock, server: ClusterServer, monkeypatch
) -> None:
    deploy(api, cluster, IMAGE_2)  # live: revision 2 (bad), revision 1 good
    real = rollout.all_replica_sets

    def someone_rolls_back_meanwhile(api_, dep, workload):
        found = real(api_, dep, workload)
        deploy(api, cluster, IMAGE_1)  # between our read and our PATCH: revision 3 = 1.0.0 again
        return found

    monkeypatch.setattr(rollout, "all_replica_sets", someone_rolls_back_meanwhile)
    server.clear_requests()

    with pytest.raises(RevisionChanged, match="moved to revision 3") as caught:
        kubeops.rollout_undo(api, WEB, to_revision=1, expect_revision=2)

    assert caught.value.live_revision == 3
    ours = [r for r in server.requests if r.method == "PATCH" and isinstance(r.body, list)]  # JSON Patch
    assert len(ours) == 1 and ours[0].body[0] == {
        "op": "test",
        "path": "/metadata/annotations/deployment.kubernetes.io~1revision",
        "value": "2",
    }
    dep = deployment(cluster)
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"  # nothing on top
    assert running_image(cluster) == IMAGE_1


def test_undo_with_the_expected_revision_live_rolls_back_to_the_named_one(
    api: ApiClient, cluster: Cluster, server: ClusterServer
) -> None:
    deploy(api, cluster, IMAGE_2)
    deploy(api, cluster, IMAGE_3)

    result = kubeops.rollout_undo(api, WEB, to_revision=1, expect_revision=3)

    assert not result.skipped and result.to_revision == 1 and result.from_revision == 3
    cluster.settle(instant=True)
    assert running_image(cluster) == IMAGE_1
