"""kubectl 1.32 (a client nobody here wrote) against the emulator, through a kubeconfig: discovery,
server-side printing, rollout history/undo/status, scale, set env, top, logs, events."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandbox.k8s import Cluster, ClusterServer, kubeconfig, serve_cluster
from sandbox.testing import wait_for

from .support import IMAGE, NAME, NS

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]


@pytest.fixture
def live() -> Iterator[tuple[Cluster, ClusterServer]]:
    """A cluster on the real clock with the controller ticking in the background, as kubectl expects."""
    cluster = Cluster()
    cluster.seed_deployment(NS, NAME, IMAGE, replicas=2, created_at=datetime.now(UTC) - timedelta(hours=2))
    server = serve_cluster(cluster, tick_interval_s=0.05)
    try:
        yield cluster, server
    finally:
        server.stop()


@pytest.fixture
def kubectl(live: tuple[Cluster, ClusterServer], tmp_path: Path):
    _, server = live
    config = kubeconfig(server.url, tmp_path / "kubeconfig", namespace=NS)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "KUBECONFIG": str(config),
        "KUBECACHEDIR": str(tmp_path / "cache"),
    }

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", *args], env=env, capture_output=True, text=True, timeout=30, check=False
        )
        if ok and done.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    return run


def _rows(output: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def test_get_deploy_rs_pods(kubectl) -> None:
    out = kubectl("get", "deploy,rs,pods").stdout
    blocks = [_rows(b) for b in out.strip().split("\n\n")]
    assert blocks[0] == [
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["deployment.apps/web", "2/2", "2", "2", "120m"],
    ]
    assert blocks[1][0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert re.fullmatch(r"replicaset\.apps/web-[a-z0-9]{6,10}", blocks[1][1][0])
    assert blocks[1][1][1:] == ["2", "2", "2", "120m"]
    assert blocks[2][0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [row[1:] for row in blocks[2][1:]] == [["1/1", "Running", "0", "120m"]] * 2
    wide = _rows(kubectl("get", "deploy", NAME, "-o", "wide").stdout)
    assert wide[1] == [NAME, "2/2", "2", "2", "120m", NAME, IMAGE, "app=web"]


def test_set_env_rollout_status_history_and_undo(live, kubectl) -> None:
    cluster, _ = live
    history = _rows(kubectl("rollout", "history", f"deploy/{NAME}").stdout)
    assert history == [["deployment.apps/web"], ["REVISION", "CHANGE-CAUSE"], ["1", "<none>"]]

    assert (
        kubectl("set", "env", f"deploy/{NAME}", "DB_POOL_SIZE=50").stdout.strip()
        == "deployment.apps/web env updated"
    )
    container = cluster.get("Deployment", NS, NAME)["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "DB_POOL_SIZE", "value": "50"}]
    status = kubectl("rollout", "status", f"deploy/{NAME}", "--timeout=10s").stdout
    assert status.strip().splitlines()[-1] == 'deployment "web" successfully rolled out'
    history = _rows(kubectl("rollout", "history", f"deploy/{NAME}").stdout)
    assert history[2:] == [["1", "<none>"], ["2", "<none>"]]

    assert kubectl("rollout", "undo", f"deploy/{NAME}").stdout.strip() == "deployment.apps/web rolled back"
    kubectl("rollout", "status", f"deploy/{NAME}", "--timeout=10s")
    history = _rows(kubectl("rollout", "history", f"deploy/{NAME}").stdout)
    assert history[2:] == [["2", "<none>"], ["3", "<none>"]]
    container = cluster.get("Deployment", NS, NAME)["spec"]["template"]["spec"]["containers"][0]
    assert "env" not in container
    restored = [
        rs
        for rs in cluster.list("ReplicaSet", NS)
        if rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision") == "3"
    ]
    assert restored[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    undo = kubectl("rollout", "undo", f"deploy/{NAME}", "--to-revision=3")
    assert "skipped rollback (current template already matches revision 3)" in undo.stdout + undo.stderr


def test_rollout_status_times_out_on_a_crash_looping_image(live, kubectl) -> None:
    kubectl("set", "image", f"deploy/{NAME}", f"{NAME}=registry.local/emotionscare/web:1.5.0-bad")
    done = kubectl("rollout", "status", f"deploy/{NAME}", "--timeout=1s", ok=False)
    assert done.returncode == 1
    assert "1 out of 2 new replicas have been updated" in done.stdout
    assert "timed out waiting for the condition" in done.stderr
    pods = _rows(kubectl("get", "pods").stdout)
    assert "CrashLoopBackOff" in {row[2] for row in pods[1:]}


def test_scale(live, kubectl) -> None:
    cluster, server = live
    assert kubectl("scale", f"deploy/{NAME}", "--replicas=3").stdout.strip() == "deployment.apps/web scaled"
    scale_patch = [r for r in server.requests if r.method == "PATCH"][-1]
    assert scale_patch.path.endswith("/deployments/web/scale")
    assert scale_patch.content_type == "application/merge-patch+json"
    wait_for(lambda: len(cluster.ready_pods(NS, NAME)) == 3)
    assert _rows(kubectl("get", "deploy", NAME).stdout)[1][1] == "3/3"


def test_top_pods_and_nodes(live, kubectl) -> None:
    cluster, _ = live
    hot = cluster.ready_pods(NS, NAME)[0]["metadata"]["name"]
    cluster.set_pod_usage(NS, hot, cpu_m=930, memory_bytes=400 * 1024 * 1024)
    pods = _rows(kubectl("top", "pods").stdout)
    assert pods[0] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert pods[1] == [hot, "930m", "400Mi"]
    assert len(pods) == 3
    nodes = _rows(kubectl("top", "nodes").stdout)
    assert nodes[0] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert {row[0] for row in nodes[1:]} == {"sandbox-node-1", "sandbox-node-2"}
    hot_node = next(
        p["spec"]["nodeName"] for p in cluster.ready_pods(NS, NAME) if p["metadata"]["name"] == hot
    )
    row = next(r for r in nodes[1:] if r[0] == hot_node)
    assert row[1:3] == ["1050m", "26%"]  # 120m system + 930m, of 4 cores


def test_logs_of_a_deployment(live, kubectl) -> None:
    cluster, _ = live
    pods = cluster.ready_pods(NS, NAME)
    for pod in pods:
        for i in range(150):
            cluster.append_pod_log(NS, pod["metadata"]["name"], f"{pod['metadata']['name']} line {i}")
    done = kubectl("logs", f"deploy/{NAME}", "--tail=100")
    lines = done.stdout.splitlines()
    assert len(lines) == 100
    chosen = re.search(r"using pod/(\S+)", done.stderr)
    assert chosen is not None and chosen.group(1) in {p["metadata"]["name"] for p in pods}
    assert lines[-1] == f"{chosen.group(1)} line 149"


def test_get_events_sorted_by_last_timestamp(live, kubectl) -> None:
    cluster, _ = live
    kubectl("scale", f"deploy/{NAME}", "--replicas=3")
    wait_for(lambda: len(cluster.ready_pods(NS, NAME)) == 3)
    rows = _rows(kubectl("get", "events", "--sort-by=.lastTimestamp").stdout)
    assert rows[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    reasons = [row[2] for row in rows[1:]]
    scaling = [row for row in rows[1:] if row[2] == "ScalingReplicaSet"]
    assert [row[3] for row in scaling] == ["deployment/web", "deployment/web"]
    assert scaling[0][0] == "120m" and scaling[-1][4].endswith("to 3 from 2")
    assert {"SuccessfulCreate", "Started", "Scheduled"} <= set(reasons)
    # sorted: the scale-up comes after everything from two hours ago
    assert rows.index(scaling[-1]) > rows.index(scaling[0])


def test_kubectl_undo_errors_pause_and_resume(live, kubectl) -> None:
    cluster, _ = live
    done = kubectl("rollout", "undo", f"deploy/{NAME}", ok=False)
    assert done.returncode == 1
    assert done.stderr.strip() == 'error: no rollout history found for deployment "web"'
    kubectl("set", "image", f"deploy/{NAME}", f"{NAME}=registry.local/emotionscare/web:1.5.0")
    kubectl("rollout", "status", f"deploy/{NAME}", "--timeout=10s")
    assert kubectl("rollout", "pause", f"deploy/{NAME}").stdout.strip() == "deployment.apps/web paused"
    done = kubectl("rollout", "undo", f"deploy/{NAME}", ok=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: you cannot rollback a paused deployment; "
        "resume it first with 'kubectl rollout resume' and try again"
    )
    assert cluster.get("Deployment", NS, NAME)["spec"]["paused"] is True
    assert kubectl("rollout", "resume", f"deploy/{NAME}").stdout.strip() == "deployment.apps/web resumed"
    assert kubectl("rollout", "undo", f"deploy/{NAME}").stdout.strip() == "deployment.apps/web rolled back"
    kubectl("rollout", "status", f"deploy/{NAME}", "--timeout=10s")
    images = {p["spec"]["containers"][0]["image"] for p in cluster.ready_pods(NS, NAME)}
    assert images == {IMAGE}
