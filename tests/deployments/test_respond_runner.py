"""deployments/ has the production topology of issue 14 item 6: `respond` in a warm-runner Deployment
with two replicas, the Job-per-run worker for every other deployment, two or more API replicas with
one services process, and intake on one PostgreSQL store.

The respond runner pod gets what a flow-run Job of the work pool gets (ServiceAccount, ConfigMap and
Secret), since respond runs the runbooks (the rollback) as subflows in its own process.
"""

from __future__ import annotations

from typing import Any

from test_manifests import find, rendered_flow_run_job

from flows import catalogue
from flows.warm.targets import refusal


def test_respond_runs_in_two_warm_runner_replicas(
    objects: list[dict[str, Any]], kustomization: dict[str, Any]
) -> None:
    assert "respond-runner.yaml" in kustomization["resources"]
    runner = find(objects, "Deployment", "respond-runner")
    assert runner["spec"]["replicas"] == 2
    [container] = runner["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["python", "-m", "flows.warm"]
    named = [arg for arg in command[3:] if not arg.startswith("--") and not arg.isdigit()]
    assert named == ["respond"]  # respond only: nothing else is safe warm (docs/latency.md)
    entries = {e.name: e for e in catalogue.entries()}
    assert refusal(entries["respond"].flow, entries["respond"].tags) is None
    pdb = find(objects, "PodDisruptionBudget", "respond-runner")
    assert pdb["spec"]["minAvailable"] == 1


def test_the_runner_pod_gets_what_a_flow_run_job_gets(
    objects: list[dict[str, Any]], work_pool_template: dict[str, Any]
) -> None:
    pod = find(objects, "Deployment", "respond-runner")["spec"]["template"]["spec"]
    job_pod = rendered_flow_run_job(work_pool_template)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == job_pod["serviceAccountName"] == "incident-runbooks"
    assert pod["containers"][0]["envFrom"] == job_pod["containers"][0]["envFrom"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    worker = find(objects, "Deployment", "prefect-worker")["spec"]["template"]["spec"]["containers"][0]
    worker_env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["PREFECT_API_URL"] == worker_env["PREFECT_API_URL"]


def test_the_rest_of_the_topology(objects: list[dict[str, Any]]) -> None:
    worker = find(objects, "Deployment", "prefect-worker")
    command = worker["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--type") + 1] == "kubernetes"  # a Job per run for everything else
    api = find(objects, "Deployment", "prefect-server-api")
    assert api["spec"]["replicas"] >= 2
    assert "--no-services" in api["spec"]["template"]["spec"]["containers"][0]["command"]
    assert find(objects, "Deployment", "intake")["spec"]["replicas"] >= 2
    services = [
        o
        for o in objects
        if o["kind"] == "Deployment"
        and any("services" in c.get("command", []) for c in o["spec"]["template"]["spec"]["containers"])
    ]
    assert len(services) == 1 and services[0]["spec"]["replicas"] == 1
