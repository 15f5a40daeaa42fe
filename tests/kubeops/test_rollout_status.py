"""`rollout_status` and `wait_for_rollout` against the emulator: kubectl's rules and messages."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from kubectl_world import IMAGE_1, NS, T0, WEB, FakeClock, set_image
from kubernetes.client import ApiClient, AppsV1Api, Configuration

import kubeops
from kubeops.models import RolloutState, RolloutStatus
from sandbox.k8s import Cluster, serve_cluster

IMAGE_2 = "registry.local/web:2.0.0"
BAD_IMAGE = "registry.local/web:2.0.0-bad"
KUBECTL_WAITING = [
    r"Waiting for deployment spec update to be observed\.\.\.",
    r'Waiting for deployment "web" rollout to finish: \d+ out of \d+ new replicas have been updated\.\.\.',
    r'Waiting for deployment "web" rollout to finish: \d+ old replicas are pending termination\.\.\.',
    r'Waiting for deployment "web" rollout to finish: \d+ of \d+ updated replicas are available\.\.\.',
]


@pytest.fixture
def slow_cluster(clock: FakeClock) -> Cluster:
    """Three replicas whose pods take 3 s to start, so a rollout passes through every waiting state."""
    c = Cluster(clock=clock.now, pod_start_delay_s=3)
    c.seed_deployment(NS, "web", IMAGE_1, replicas=3, created_at=T0 - timedelta(hours=2))
    return c


@pytest.fixture
def slow_api(slow_cluster: Cluster) -> Iterator[ApiClient]:
    server = serve_cluster(slow_cluster, tick_interval_s=0)
    try:
        with ApiClient(Configuration(host=server.url)) as client:
            yield client
    finally:
        server.stop()


def follow(api: ApiClient, cluster: Cluster, clock: FakeClock, max_steps: int = 60) -> list[RolloutStatus]:
    """`rollout_status` after every controller pass (1 s apart) until it is no longer waiting."""
    seen = [kubeops.rollout_status(api, WEB)]
    for _ in range(max_steps):
        if seen[-1].state is not RolloutState.WAITING:
            break
        clock.advance(1)
        cluster.tick()
        seen.append(kubeops.rollout_status(api, WEB))
    return seen


def distinct(messages: list[str]) -> list[str]:
    return [m for i, m in enumerate(messages) if i == 0 or messages[i - 1] != m]


def test_a_rollout_goes_through_kubectls_waiting_states_to_done(
    slow_api: ApiClient, slow_cluster: Cluster, clock: FakeClock
) -> None:
    assert kubeops.rollout_status(slow_api, WEB).done

    set_image(slow_api, IMAGE_2)
    statuses = follow(slow_api, slow_cluster, clock)

    messages = distinct([s.message for s in statuses])
    assert messages[0] == "Waiting for deployment spec update to be observed..."
    assert messages[-1] == 'deployment "web" successfully rolled out'
    assert statuses[-1].done and statuses[-1].revision == 2
    for message in messages[:-1]:
        assert any(re.fullmatch(p, message) for p in KUBECTL_WAITING), message
    assert any("new replicas have been updated" in m for m in messages)
    assert any("old replicas are pending termination" in m for m in messages)


def test_scaling_up_waits_for_the_new_replicas_to_be_available(
    slow_api: ApiClient, slow_cluster: Cluster, clock: FakeClock
) -> None:
    kubeops.scale(slow_api, WEB, 5)
    messages = distinct([s.message for s in follow(slow_api, slow_cluster, clock)])
    assert (
        'Waiting for deployment "web" rollout to finish: 3 of 5 updated replicas are available...' in messages
    )
    assert messages[-1] == 'deployment "web" successfully rolled out'


@pytest.fixture
def tick(cluster: Cluster, clock: FakeClock) -> Callable[[float], None]:
    """`sleep` for `wait_for_rollout`: the fake time passes and the controller makes one pass."""

    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        cluster.tick()

    return sleep


def test_wait_for_rollout_returns_when_done(
    api: ApiClient, clock: FakeClock, tick: Callable[[float], None]
) -> None:
    set_image(api, IMAGE_2)
    done = kubeops.wait_for_rollout(
        api,
        WEB,
        deadline_s=120,
        poll_interval_s=2,
        clock=clock.monotonic,
        sleep=tick,
    )
    assert done.done and done.updated == done.available == 2
    assert clock.monotonic() < 120


def test_wait_for_rollout_times_out_on_a_crash_looping_image(
    api: ApiClient, cluster: Cluster, clock: FakeClock, tick: Callable[[float], None]
) -> None:
    set_image(api, BAD_IMAGE)

    with pytest.raises(kubeops.RolloutTimedOut) as caught:
        kubeops.wait_for_rollout(
            api,
            WEB,
            deadline_s=60,
            poll_interval_s=5,
            clock=clock.monotonic,
            sleep=tick,
        )

    assert clock.monotonic() == pytest.approx(60)  # polled to the deadline, not a second beyond
    last = caught.value.last
    assert last is not None and last.state is RolloutState.WAITING
    assert "did not finish rolling out within 60s" in str(caught.value)
    assert last.message in str(caught.value)
    crashing = [
        s["state"]["waiting"]["reason"]
        for p in cluster.deployment_pods(NS, "web")
        for s in p["status"].get("containerStatuses") or []
        if s["image"] == BAD_IMAGE and "waiting" in s["state"]
    ]
    assert "CrashLoopBackOff" in crashing


def test_wait_for_rollout_fails_when_the_progress_deadline_is_exceeded(
    api: ApiClient, cluster: Cluster, clock: FakeClock, tick: Callable[[float], None]
) -> None:
    AppsV1Api(api).patch_namespaced_deployment(
        "web", NS, {"spec": {"progressDeadlineSeconds": 30}}, _request_timeout=5
    )
    cluster.settle(instant=True)
    set_image(api, BAD_IMAGE)

    with pytest.raises(
        kubeops.RolloutFailed, match=r'^deployment "web" exceeded its progress deadline$'
    ) as caught:
        kubeops.wait_for_rollout(
            api,
            WEB,
            deadline_s=600,
            poll_interval_s=5,
            clock=clock.monotonic,
            sleep=tick,
        )

    assert caught.value.status.state is RolloutState.FAILED
    assert 30 <= clock.monotonic() < 600


def test_a_different_revision_is_an_error(api: ApiClient) -> None:
    status = kubeops.rollout_status(api, WEB, revision=5)
    assert status.state is RolloutState.FAILED
    assert status.message == "desired revision (5) is different from the running revision (1)"
    with pytest.raises(kubeops.RolloutFailed):
        kubeops.wait_for_rollout(api, WEB, deadline_s=10, poll_interval_s=1, revision=5)


def test_a_deployment_deleted_while_waiting_aborts_the_wait(
    api: ApiClient, cluster: Cluster, clock: FakeClock
) -> None:
    set_image(api, BAD_IMAGE)

    def delete_then_tick(seconds: float) -> None:
        cluster.delete("Deployment", NS, "web")
        clock.advance(seconds)

    with pytest.raises(kubeops.WorkloadNotFound):
        kubeops.wait_for_rollout(
            api, WEB, deadline_s=60, poll_interval_s=5, clock=clock.monotonic, sleep=delete_then_tick
        )


def test_wait_for_rollout_is_bounded_in_real_time() -> None:
    """The same timeout with the real clock and sleep, the controller ticking in the background."""
    cluster = Cluster()
    cluster.seed_deployment(NS, "web", IMAGE_1, replicas=2)
    server = serve_cluster(cluster, tick_interval_s=0.02)
    try:
        with ApiClient(Configuration(host=server.url)) as api:
            set_image(api, BAD_IMAGE)
            started = time.monotonic()
            with pytest.raises(kubeops.RolloutTimedOut):
                kubeops.wait_for_rollout(api, WEB, deadline_s=0.4, poll_interval_s=0.05)
            elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert 0.4 <= elapsed < 2.0


@pytest.mark.parametrize(("deadline_s", "poll_interval_s"), [(-1, 1), (10, 0)])
def test_wait_for_rollout_refuses_bad_timings(
    api: ApiClient, deadline_s: float, poll_interval_s: float
) -> None:
    with pytest.raises(ValueError, match="deadline_s"):
        kubeops.wait_for_rollout(api, WEB, deadline_s=deadline_s, poll_interval_s=poll_interval_s)
