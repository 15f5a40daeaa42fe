"""deployments/ is deployable: it parses, renders with kustomize, matches the Kubernetes schema, runs
non-root with resources set, holds no secret, and sets only real settings.

Usage: `.venv/bin/python -m pytest tests/deployments -q`. The schema check deserialises every object
into the official client's model and serialises it back: a field the model does not know (a typo such
as `readinesProbe`) is dropped on the way and reported. The settings check loads each pod's
environment, Secret placeholders included, with `runbook.settings.load_settings`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deployments"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
# Environment variables that are not Prefect or runbook settings, by the image that reads them.
OTHER_ENV = {
    "postgres": {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD", "PGDATA", "INCIDENTS_PASSWORD"},
    "redis": {"REDIS_PASSWORD", "REDISCLI_AUTH"},
    "prefecthq/prefect": {"HOME"},
}
# Fields of prefect-redis 0.3.0's RedisMessagingSettings (PREFECT_REDIS_MESSAGING_*) and the
# prefect-kubernetes 0.8.0 settings the manifests set: both are in the cluster image
# (deployments/requirements.txt), not in the development virtualenv.
REDIS_FIELDS = "url host port db username password health_check_interval ssl socket_timeout socket_connect_timeout protocol"
INTEGRATION_SETTINGS = {f"PREFECT_REDIS_MESSAGING_{f.upper()}" for f in REDIS_FIELDS.split()} | {
    "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"
}
SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|SECRET|DSN|ROUTING_KEY|CONNECTION_URL|STORE_URL|AUTH)$")
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]*:(?!\$\()[^@\s]+@")


# --- helpers ------------------------------------------------------------------------------------------------


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(spec.get("initContainers") or []), *spec["containers"]]


def rendered_flow_run_job(template: dict[str, Any]) -> dict[str, Any]:
    """The flow-run Job as the work pool renders it with its defaults (Prefect's own templating)."""
    from prefect.utilities.templating import apply_values

    # a null default is "not set": its key is removed, as the worker does (`cpu_limit` here)
    defaults = {
        name: prop["default"]
        for name, prop in template["variables"]["properties"].items()
        if prop.get("default") is not None
    }
    config = apply_values(template["job_configuration"], defaults, remove_notset=True)
    job = config["job_manifest"]
    job["metadata"]["name"] = "flow-run"
    return job


def workloads(objects: list[dict[str, Any]], template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        *pod_specs(objects),
        ("work pool Job", rendered_flow_run_job(template)["spec"]["template"]["spec"]),
    ]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def pod_env(
    container: dict[str, Any], config_maps: dict[str, dict[str, str]], secrets: dict[str, dict[str, str]]
) -> dict[str, str]:
    """The container's environment as the kubelet builds it, with the example Secrets' placeholders."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), var["value"])
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = config_maps[ref["name"]][ref["key"]]
    return env


def _diff(original: Any, back: Any, path: str = "") -> list[str]:
    """Paths present in `original` and lost (or changed) in the round trip through the model."""
    if isinstance(original, dict):
        if not isinstance(back, dict):
            return [path or "/"]
        return [p for key, value in original.items() for p in _diff(value, back.get(key), f"{path}.{key}")]
    if isinstance(original, list):
        if not isinstance(back, list) or len(back) != len(original):
            return [path]
        return [p for i, value in enumerate(original) for p in _diff(value, back[i], f"{path}[{i}]")]
    if original != back and str(original) != str(back):
        return [path]
    return []


# --- files --------------------------------------------------------------------------------------------------


def test_every_manifest_parses_and_names_its_objects() -> None:
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        assert docs, path.name
        if path.name == "kustomization.yaml":
            continue
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), path.name
            assert doc["metadata"]["name"], path.name
            cluster_scoped = doc["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding")
            assert cluster_scoped or doc["metadata"].get("namespace"), (
                f"{path.name}: {doc['metadata']['name']}"
            )
    json.loads((DEPLOY / "work-pool-kubernetes.json").read_text(encoding="utf-8"))


def test_kustomization_lists_every_manifest_but_the_secret_example(kustomization: dict[str, Any]) -> None:
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
    assert set(kustomization["resources"]) == on_disk
    assert "namespace" not in kustomization, "one namespace for all would move the Role out of prod"


def test_kubectl_kustomize_renders(objects: list[dict[str, Any]], kustomization: dict[str, Any]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    # everything listed, plus the generated work-pool ConfigMap
    assert len(rendered) == len(objects) + 1
    pool = next(d for d in rendered if d["metadata"]["name"].startswith("prefect-work-pool-"))
    template = json.loads(pool["data"]["work-pool-kubernetes.json"])
    assert template == json.loads((DEPLOY / "work-pool-kubernetes.json").read_text(encoding="utf-8"))
    worker = find(rendered, "Deployment", "prefect-worker")
    volumes = {v["name"]: v for v in worker["spec"]["template"]["spec"]["volumes"]}
    assert volumes["work-pool"]["configMap"]["name"] == pool["metadata"]["name"]
    image = kustomization["images"][0]
    ours = f"{image['newName']}:{image['newTag']}"
    for name, spec in pod_specs(rendered):
        for c in containers(spec):
            assert not c["image"].startswith("incident-runbooks:"), f"{name}: image not rewritten"
    assert {c["image"] for _n, s in pod_specs(rendered) for c in containers(s)} >= {ours}


def test_every_object_matches_the_kubernetes_schema(
    objects: list[dict[str, Any]], work_pool_template: dict[str, Any]
) -> None:
    api = ApiClient()
    secrets = [d for d in yaml.safe_load_all((DEPLOY / "secrets.example.yaml").read_text()) if d]
    lost = []
    for obj in [*objects, *secrets, rendered_flow_run_job(work_pool_template)]:
        model = "V1" + obj["kind"]
        back = api.sanitize_for_serialization(api.deserialize(json.dumps(obj), model, "application/json"))
        lost += [f"{obj['kind']}/{obj['metadata']['name']}{p}" for p in _diff(obj, back)]
    assert not lost, "fields the Kubernetes schema does not have:\n" + "\n".join(lost)


# --- how the pods run ---------------------------------------------------------------------------------------


def test_every_container_has_requests_and_a_memory_limit(
    objects: list[dict[str, Any]], work_pool_template: dict[str, Any]
) -> None:
    for name, spec in workloads(objects, work_pool_template):
        for c in containers(spec):
            res = c.get("resources") or {}
            where = f"{name}/{c['name']}"
            assert {"cpu", "memory"} <= set(res.get("requests") or {}), where
            assert "memory" in (res.get("limits") or {}), where


def test_every_pod_runs_restricted_and_non_root(
    objects: list[dict[str, Any]], work_pool_template: dict[str, Any]
) -> None:
    """Pod Security "restricted" (namespace.yaml enforces it), plus a read-only root filesystem."""
    for name, spec in workloads(objects, work_pool_template):
        pod = spec.get("securityContext") or {}
        assert pod.get("runAsNonRoot") is True, name
        assert pod.get("runAsUser", 0) > 0, name
        assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
        for c in containers(spec):
            sc = c.get("securityContext") or {}
            where = f"{name}/{c['name']}"
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities") == {"drop": ["ALL"]}, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("runAsUser", pod["runAsUser"]) > 0 and not sc.get("privileged"), where


def test_only_the_worker_and_the_runbooks_hold_an_api_token(
    objects: list[dict[str, Any]], work_pool_template: dict[str, Any]
) -> None:
    holders = {}
    for name, spec in workloads(objects, work_pool_template):
        if spec.get("automountServiceAccountToken", True):
            holders[name] = spec.get("serviceAccountName")
    # the respond runners run the runbooks (as respond's subflows) in their own pods: the runbooks' account
    assert holders == {
        "Deployment/prefect-worker": "prefect-worker",
        "Deployment/respond-runner": "incident-runbooks",
        "work pool Job": "incident-runbooks",
    }


def test_namespace_enforces_the_restricted_pod_security_standard(objects: list[dict[str, Any]]) -> None:
    ns = find(objects, "Namespace", "incident-runbooks")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# --- secrets ------------------------------------------------------------------------------------------------


def test_no_secret_value_in_the_manifests(
    objects: list[dict[str, Any]],
    work_pool_template: dict[str, Any],
    example_secrets: dict[str, dict[str, str]],
) -> None:
    assert not [o for o in objects if o["kind"] == "Secret"], (
        "Secrets are created by hand, never applied from here"
    )
    problems = []
    for name, data in (
        (o["metadata"]["name"], o.get("data") or {}) for o in objects if o["kind"] == "ConfigMap"
    ):
        for key, value in data.items():
            if SECRET_NAME.search(key) or CREDENTIALS_IN_URL.search(value):
                problems.append(f"ConfigMap {name}: {key}")
    for name, spec in workloads(objects, work_pool_template):
        for c in containers(spec):
            for var in c.get("env") or []:
                where = f"{name}/{c['name']}: {var['name']}"
                if "value" in var and (
                    SECRET_NAME.search(var["name"]) or CREDENTIALS_IN_URL.search(var["value"])
                ):
                    problems.append(f"{where} is a literal")
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref["key"] not in example_secrets.get(ref["name"], {}):
                    problems.append(
                        f"{where}: Secret {ref['name']} key {ref['key']} not in secrets.example.yaml"
                    )
            for source in c.get("envFrom") or []:
                if "secretRef" in source and source["secretRef"]["name"] not in example_secrets:
                    problems.append(
                        f"{name}: Secret {source['secretRef']['name']} not in secrets.example.yaml"
                    )
    assert not problems, "\n".join(problems)


def test_the_secret_example_holds_only_placeholders(example_secrets: dict[str, dict[str, str]]) -> None:
    for name, data in example_secrets.items():
        for key, value in data.items():
            assert "change-me" in value, f"{name}.{key} looks like a real value"


# --- settings -----------------------------------------------------------------------------------------------


def runbook_setting_names() -> set[str]:
    """RUNBOOK_<GROUP>_<FIELD> for every field of every group (a nested model of Settings), and
    RUNBOOK_<FIELD> for the top-level fields."""
    from runbook.settings import Settings

    names = set()
    for name, info in Settings.model_fields.items():
        group = info.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            names |= {f"RUNBOOK_{name}_{sub}".upper() for sub in group.model_fields}
        else:
            names.add(f"RUNBOOK_{name}".upper())
    return names | crash_detection_setting_names()


def crash_detection_setting_names() -> set[str]:
    """RUNBOOK_CRASH_DETECTION_* (flows.automations, read by the prefect-automations Job)."""
    from flows.automations import ENV_PREFIX, CrashDetectionSettings

    return {f"{ENV_PREFIX}{name}".upper() for name in CrashDetectionSettings.model_fields}


def prefect_setting_names() -> set[str]:
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_valid_setting_names

    return set(_get_valid_setting_names(Settings)) | INTEGRATION_SETTINGS


def test_every_environment_variable_is_a_real_setting(
    objects: list[dict[str, Any]],
    work_pool_template: dict[str, Any],
    config_maps: dict[str, dict[str, str]],
    example_secrets: dict[str, dict[str, str]],
) -> None:
    runbook, prefect = runbook_setting_names(), prefect_setting_names()
    unknown = []
    for name, spec in workloads(objects, work_pool_template):
        for c in containers(spec):
            image = c["image"].split(":")[0]
            for var in pod_env(c, config_maps, example_secrets):
                if var.startswith("RUNBOOK_"):
                    ok = var in runbook
                elif var.startswith("PREFECT_"):
                    ok = var in prefect
                else:
                    ok = var in OTHER_ENV.get(image, set())
                if not ok:
                    unknown.append(f"{name}/{c['name']}: {var}")
    assert not unknown, "not a setting of anything in the pod:\n" + "\n".join(unknown)


def test_an_unknown_setting_name_would_be_caught() -> None:
    names = runbook_setting_names()
    assert "RUNBOOK_SLACK_TOKEN" in names and "RUNBOOK_STORE_URL" in names and "RUNBOOK_ENVIRONMENT" in names
    assert "RUNBOOK_SLACK_TOKENS" not in names and "RUNBOOK_SLACKTOKEN" not in names
    assert "PREFECT_SERVER_API_PORT" in prefect_setting_names()
    assert "PREFECT_SERVER_API_PORTS" not in prefect_setting_names()


def _load_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    import os

    from runbook.settings import load_settings

    for key in list(os.environ):
        if key.startswith("RUNBOOK_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("RUNBOOK_"):
            monkeypatch.setenv(key, value)
    return load_settings(env_file=None)


def test_the_intake_pods_settings_load_for_production_on_postgresql(
    monkeypatch: pytest.MonkeyPatch,
    objects: list[dict[str, Any]],
    config_maps: dict[str, dict[str, str]],
    example_secrets: dict[str, dict[str, str]],
) -> None:
    intake = find(objects, "Deployment", "intake")
    env = pod_env(intake["spec"]["template"]["spec"]["containers"][0], config_maps, example_secrets)
    settings = _load_settings(monkeypatch, env)
    assert settings.environment == "production"
    assert settings.intake.host == "0.0.0.0" and not settings.intake.loopback_only
    assert set(settings.intake.tokens) == {"alertmanager", "grafana", "generic"}
    assert settings.store.url.startswith("postgresql://")


def test_the_flow_run_pods_settings_load_for_production_in_cluster(
    monkeypatch: pytest.MonkeyPatch,
    work_pool_template: dict[str, Any],
    config_maps: dict[str, dict[str, str]],
    example_secrets: dict[str, dict[str, str]],
) -> None:
    job = rendered_flow_run_job(work_pool_template)
    env = pod_env(job["spec"]["template"]["spec"]["containers"][0], config_maps, example_secrets)
    settings = _load_settings(monkeypatch, env)
    assert settings.environment == "production"
    assert settings.kubernetes.in_cluster is True
    assert (settings.kubernetes.namespace, settings.kubernetes.deployment) == ("prod", "emotionscare")
    assert settings.slack.token is not None and settings.pagerduty.routing_key is not None
    assert settings.sentry.token is not None and settings.database.dsn is not None
    assert settings.store.url.startswith("postgresql://")


# --- intake -------------------------------------------------------------------------------------------------


def test_intake_runs_several_replicas_on_the_postgresql_store(
    objects: list[dict[str, Any]], example_secrets: dict[str, dict[str, str]]
) -> None:
    intake = find(objects, "Deployment", "intake")
    assert intake["spec"]["replicas"] >= 2
    c = intake["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["python", "-m", "intake"]
    store = next(v for v in c["env"] if v["name"] == "RUNBOOK_STORE_URL")
    ref = store["valueFrom"]["secretKeyRef"]
    assert not ref.get("optional")
    assert example_secrets[ref["name"]][ref["key"]].startswith("postgresql://")
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port = next(v["value"] for v in c["env"] if v["name"] == "RUNBOOK_INTAKE_PORT")
    assert int(port) == c["ports"][0]["containerPort"]
    pdb = find(objects, "PodDisruptionBudget", "intake")
    assert 1 <= pdb["spec"]["minAvailable"] < intake["spec"]["replicas"]
    assert pdb["spec"]["selector"]["matchLabels"] == intake["spec"]["selector"]["matchLabels"]
    service = find(objects, "Service", "intake")
    assert service["spec"]["selector"] == intake["spec"]["selector"]["matchLabels"]


# --- the Prefect server -------------------------------------------------------------------------------------


def _constraint(package: str) -> str:
    text = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(package)}==(\S+)$", text, re.MULTILINE | re.IGNORECASE)
    assert match, package
    return match.group(1)


def test_the_server_runs_on_postgres_with_redis_messaging(
    objects: list[dict[str, Any]],
    config_maps: dict[str, dict[str, str]],
    example_secrets: dict[str, dict[str, str]],
) -> None:
    config = config_maps["prefect-server"]
    # docs/prefect-notes.md §6 (several server processes: Redis messaging)
    assert config["PREFECT_MESSAGING_BROKER"] == "prefect_redis.messaging"
    assert config["PREFECT_MESSAGING_CACHE"] == "prefect_redis.messaging"
    assert config["PREFECT_SERVER_EVENTS_CAUSAL_ORDERING"] == "prefect_redis.ordering"
    assert config["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"] == "prefect_redis.lease_storage"
    assert config["PREFECT_REDIS_MESSAGING_HOST"] and config["PREFECT_REDIS_MESSAGING_PORT"] == "6379"
    assert config["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] == "false"
    assert config["PREFECT_UI_API_URL"].endswith("/api")
    api = find(objects, "Deployment", "prefect-server-api")
    services = find(objects, "Deployment", "prefect-server-services")
    assert api["spec"]["replicas"] >= 2
    api_c = api["spec"]["template"]["spec"]["containers"][0]
    assert api_c["command"] == ["prefect", "server", "start", "--no-services"]
    # the port is the setting, not --port (reference, problem 3)
    assert int(config["PREFECT_SERVER_API_PORT"]) == api_c["ports"][0]["containerPort"]
    assert services["spec"]["replicas"] == 1 and services["spec"]["strategy"]["type"] == "Recreate"
    services_c = services["spec"]["template"]["spec"]["containers"][0]
    assert services_c["command"] == ["prefect", "server", "services", "start"]
    for c in (api_c, services_c):
        env = pod_env(c, config_maps, example_secrets)
        assert env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
        docket = env["PREFECT_SERVER_DOCKET_URL"]
        assert docket.startswith("redis://") and docket.endswith("/1")
        assert example_secrets["redis"]["REDIS_PASSWORD"] in docket  # the password reaches the URL
        assert config["PREFECT_REDIS_MESSAGING_HOST"] in docket


def test_the_migration_job_runs_prefect_s_version(objects: list[dict[str, Any]]) -> None:
    version = _constraint("prefect")
    job = next(o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].startswith("prefect-db"))
    assert job["metadata"]["name"] == f"prefect-db-upgrade-{version.replace('.', '-')}"
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["prefect", "server", "database", "upgrade", "-y"]
    assert c["image"] == f"prefecthq/prefect:{version}-python3.11"


def test_the_store_migration_job_carries_the_schema_head_and_runs_the_upgrade(
    objects: list[dict[str, Any]],
    config_maps: dict[str, dict[str, str]],
    example_secrets: dict[str, dict[str, str]],
) -> None:
    from runbook.store.migrate import HEAD

    job = next(
        o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].startswith("incident-store")
    )
    assert job["metadata"]["name"] == f"incident-store-upgrade-{HEAD}"  # a new revision, a new Job
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "runbook.store", "upgrade"]
    env = pod_env(container, config_maps, example_secrets)
    assert env["RUNBOOK_STORE_URL"] == example_secrets["incident-runbooks"]["RUNBOOK_STORE_URL"]


def test_the_automations_job_applies_the_crashed_runs_automation_once_the_api_answers(
    objects: list[dict[str, Any]],
    config_maps: dict[str, dict[str, str]],
    example_secrets: dict[str, dict[str, str]],
) -> None:
    from flows.automations import load_crash_detection_settings

    job = find(objects, "Job", "prefect-automations")
    spec = job["spec"]["template"]["spec"]
    (apply,) = spec["containers"]
    assert apply["command"] == ["python", "-m", "flows.automations", "apply"]
    assert job["spec"]["ttlSecondsAfterFinished"] > 0  # gone after a while: the next apply -k runs it again
    service = find(objects, "Service", "prefect-server")
    env = pod_env(apply, config_maps, example_secrets)
    port = service["spec"]["ports"][0]["port"]
    assert env["PREFECT_API_URL"] == f"http://prefect-server.incident-runbooks.svc.cluster.local:{port}/api"
    (wait,) = spec["initContainers"]
    assert f"{env['PREFECT_API_URL']}/ready" in wait["command"][-1]  # the API answers before the apply
    settings = load_crash_detection_settings(
        env_file=None,
        heartbeat_s=env["RUNBOOK_CRASH_DETECTION_HEARTBEAT_S"],
        window_s=env["RUNBOOK_CRASH_DETECTION_WINDOW_S"],
    )
    assert settings.window_s >= 2 * settings.heartbeat_s


def test_every_flow_run_pod_sends_heartbeats_at_the_automation_s_frequency(
    config_maps: dict[str, dict[str, str]],
    example_secrets: dict[str, dict[str, str]],
    work_pool_template: dict[str, Any],
) -> None:
    """The flow-run Jobs read the ConfigMap incident-runbooks: heartbeats as often as the automation expects."""
    (container,) = rendered_flow_run_job(work_pool_template)["spec"]["template"]["spec"]["containers"]
    env = pod_env(container, config_maps, example_secrets)
    assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == env["RUNBOOK_CRASH_DETECTION_HEARTBEAT_S"]
    assert int(env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]) >= 30  # Prefect refuses less


# --- the worker and the image -------------------------------------------------------------------------------


def test_the_worker_serves_the_kubernetes_pool_from_the_mounted_template(
    objects: list[dict[str, Any]],
) -> None:
    worker = find(objects, "Deployment", "prefect-worker")
    spec = worker["spec"]["template"]["spec"]
    command = spec["containers"][0]["command"]
    assert command[:3] == ["prefect", "worker", "start"]
    args = dict(zip(command[3::2], command[4::2], strict=False))
    assert args["--pool"] == "runbooks-k8s" and args["--type"] == "kubernetes"
    assert args["--install-policy"] == "never"
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "work-pool")
    assert args["--base-job-template"] == f"{mount['mountPath']}/work-pool-kubernetes.json"
    role = find(objects, "Role", "prefect-worker")
    assert not any("secrets" in r["resources"] for r in role["rules"])


def test_the_dockerfile_installs_the_project_pinned_and_runs_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    for source in re.findall(r"^COPY (?!--from)(\S+) ", text, re.MULTILINE):
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    assert re.search(r"pip install -c constraints\.txt \. -r deployments/requirements\.txt", text)
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and not user[-1].startswith(("0", "root"))
    pinned = {}
    for line in (DEPLOY / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{line}: not an exact pin"
            pinned[name.lower()] = version
    assert {"prefect-redis", "prefect-kubernetes"} <= set(pinned)
    constraints = (ROOT / "constraints.txt").read_text(encoding="utf-8").lower()
    for name, version in pinned.items():
        listed = re.search(rf"^{re.escape(name)}==(\S+)$", constraints, re.MULTILINE)
        assert listed is None or listed.group(1) == version.lower(), f"{name} disagrees with constraints.txt"
