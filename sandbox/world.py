"""The whole sandbox world on 127.0.0.1: cluster, service, database, external APIs, Slack, PagerDuty, Sentry.

Usage::

    world = World().start()                       # free ports; World(port_base=8100): fixed ones
    os.environ.update(world.settings_env())       # RUNBOOK_* pointing the runbooks at this world
    world.inject("bad-deploy", ago_min=2)         # sandbox/faults.py; world.inject("api-down", "hume")
    world.status()                                # what is live, which faults are active
    world.clear()                                 # every fault removed, the world healthy
    world.reset()                                 # ... and the baseline Deployment, stand-ins emptied
    world.stop()                                  # every server, thread and the PostgreSQL process

What starts (`start()`, about 0.3 s on a shared PostgreSQL server, 1 s with its own):
- a real PostgreSQL (`sandbox.postgres`) with the service's database `emotionscare` (or a database of
  its own on a server shared between worlds, `postgres=`), and a Supabase-like management API whose
  `POST /v1/projects/{ref}/restart` restarts it (the guide's "Option 3");
- the Kubernetes API emulator with Deployment `prod/emotionscare`: v1.0.0 three days ago, v1.1.0
  (`GOOD_IMAGE`) a day ago and live, two Ready pods, `DB_POOL_SIZE=5`, every feature flag on;
- the service under care (`sandbox.service.EmotionsCare`), following that Deployment;
- Hume, OpenAI and Spotify stand-ins (with API keys the service sends), Slack, PagerDuty, Sentry;
- optional synthetic traffic (`traffic_rate_per_s`): users calling the feature endpoints, so
  metrics, logs and Sentry's error rate move the way production's do.

Releases are rolled out through the emulator's own API (a template change the controller rolls),
optionally back-dated (`rollout(image, ago=...)`) so a runbook sees a deploy "2 hours ago".

Why one module past 400 lines: `World` is one thing, the assembly: it starts, wires, resets and reports
the parts, each of which lives in its own module (sandbox.service, sandbox.k8s, the stand-ins,
sandbox.provider, sandbox.traffic, sandbox.faults).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from sandbox import faults
from sandbox.external_apis import API_NAMES, ExternalApis
from sandbox.k8s import Cluster, ClusterServer, kubeconfig, serve_cluster
from sandbox.pagerduty import DEFAULT_ROUTING_KEY, PagerDutyStandIn
from sandbox.postgres import EmbeddedPostgres
from sandbox.provider import PROVIDER_PROJECT, PROVIDER_TOKEN, DatabaseProvider
from sandbox.sentry import SentryStandIn
from sandbox.service import DEPLOYMENT, FEATURE_FLAGS, NAMESPACE, SERVICE, EmotionsCare
from sandbox.slack import SlackStandIn
from sandbox.traffic import SyntheticTraffic

__all__ = [
    "ADMIN_TOKEN",
    "BASE_ENV",
    "DEPLOYMENT",
    "GOOD_IMAGE",
    "IMAGE_REPO",
    "NAMESPACE",
    "PORT_OFFSETS",
    "PREVIOUS_IMAGE",
    "DatabaseProvider",
    "SyntheticTraffic",
    "World",
]

IMAGE_REPO = "registry.local/emotionscare"
PREVIOUS_IMAGE = f"{IMAGE_REPO}:v1.0.0"
GOOD_IMAGE = f"{IMAGE_REPO}:v1.1.0"
SLACK_TOKEN = "xoxb-sandbox-token"
SENTRY_TOKEN = "sntrys-sandbox-token"
ADMIN_TOKEN = "sandbox-admin-token"
API_KEYS = {"hume": "hume-sandbox-key", "openai": "sk-sandbox-openai-key", "spotify": "spotify-sandbox-token"}
BASE_ENV: dict[str, str] = {"DB_POOL_SIZE": "5", **{flag: "true" for flag in FEATURE_FLAGS}}
BASE_REPLICAS = 2
# `port_base=N`: every listener at N + its offset, so a person can remember them.
PORT_OFFSETS = {
    "postgres": 0,
    "kubernetes": 1,
    "service": 2,
    "slack": 3,
    "pagerduty": 4,
    "sentry": 5,
    "hume": 6,
    "openai": 7,
    "spotify": 8,
    "database-provider": 9,
    "control": 10,
}


class World:
    """Everything the runbooks act on, on 127.0.0.1. See the module docstring."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        postgres: EmbeddedPostgres | None = None,
        host: str = "127.0.0.1",
        port_base: int | None = None,
        tick_interval_s: float = 0.05,
        pod_start_delay_s: float = 0.0,
        sync_interval_s: float = 0.2,
        step_interval_s: float = 1.0,
        leak_interval_s: float | None = None,
        db_acquire_timeout_s: float = 1.0,
        db_open_wait_s: float = 1.0,
        traffic_rate_per_s: float = 0.0,
        database_provider: bool = True,
    ) -> None:
        """`leak_interval_s` is the older name of `step_interval_s` (resource steps: memory, CPU,
        OOM kills; 0 = only when `step()` is called)."""
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="runbook-world-")).resolve()
        self.host = host
        self.port_base = port_base
        self._own_pg = postgres is None
        self.postgres = postgres or EmbeddedPostgres(
            data_dir=self.data_dir / "postgres", port=self.port_for("postgres"), host=host
        )
        self.db_name = "emotionscare" if self._own_pg else f"emotionscare_{uuid.uuid4().hex[:10]}"
        self.tick_interval_s = tick_interval_s
        self.image_repo = IMAGE_REPO
        self.cluster = Cluster(pod_start_delay_s=pod_start_delay_s)
        self.slack = SlackStandIn(token=SLACK_TOKEN)
        self.pagerduty = PagerDutyStandIn()
        self.sentry = SentryStandIn(
            token=SENTRY_TOKEN, org="emotionscare", projects=(SERVICE,), platform="node"
        )
        self.apis = ExternalApis(keys=API_KEYS)
        self.provider: DatabaseProvider | None = (
            DatabaseProvider(self.restart_database, lambda: self.postgres.running)
            if database_provider
            else None
        )
        self.k8s: ClusterServer | None = None
        self.service = EmotionsCare(
            self.cluster,
            self.postgres.dsn(self.db_name),
            sentry=self.sentry,
            api_keys=API_KEYS,
            admin_token=ADMIN_TOKEN,
            db_acquire_timeout_s=db_acquire_timeout_s,
            db_open_wait_s=db_open_wait_s,
            sync_interval_s=sync_interval_s,
            step_interval_s=step_interval_s if leak_interval_s is None else leak_interval_s,
        )
        self.traffic = SyntheticTraffic(lambda: self.service.url, traffic_rate_per_s, every_1000=self._trim)
        self.fault_state: dict[str, faults.ActiveFault] = {}
        self.lock = threading.RLock()
        self.started_at: datetime | None = None
        self.start_s: float | None = None
        """Seconds `start()` took (the fixture's cost)."""

    # -- lifecycle --------------------------------------------------------------------------------
    def port_for(self, name: str) -> int:
        """The port `name` listens on: `port_base + offset`, or 0 (a free one) without a base."""
        return self.port_base + PORT_OFFSETS[name] if self.port_base is not None else 0

    def start(self, on_progress: Callable[[str], None] | None = None) -> World:
        """Start everything (see the module docstring); `on_progress(line)` hears each step.
        On any failure what was started is stopped again and the error raised."""
        say = on_progress or (lambda _line: None)
        began = time.perf_counter()
        try:
            if not self.postgres.running:
                say(f"starting PostgreSQL on {self.host}:{self.postgres.port}")
                self.postgres.start()
            self.postgres.create_database(self.db_name)
            say(f"PostgreSQL ready: database {self.db_name} on {self.host}:{self.postgres.port}")
            self._seed()
            self.k8s = serve_cluster(
                self.cluster, self.host, self.port_for("kubernetes"), self.tick_interval_s
            )
            kubeconfig(self.k8s.url, self.kubeconfig_path, namespace=NAMESPACE)
            say(f"Kubernetes API emulator ready: {self.k8s.url} (deployment {NAMESPACE}/{DEPLOYMENT})")
            for standin in (self.slack, self.pagerduty, self.sentry):
                standin.start(self.host, self.port_for(standin.name))
            say(
                f"Slack, PagerDuty, Sentry stand-ins ready: {self.slack.url} {self.pagerduty.url} {self.sentry.url}"
            )
            for name in API_NAMES:
                self.apis.api(name).start(self.host, self.port_for(name))
            say("Hume, OpenAI, Spotify stand-ins ready: " + " ".join(self.apis.urls.values()))
            if self.provider is not None:
                self.provider.start(self.host, self.port_for("database-provider"))
            self.service.apis = self.apis.urls
            self.service.start(self.host, self.port_for("service"))
            say(f"EmotionsCare service ready: {self.service.url} (/health, /api/health)")
            self.traffic.start()
            if self.traffic.rate_per_s > 0:
                say(f"synthetic traffic: {self.traffic.rate_per_s:g} request(s)/s")
        except BaseException:
            self.stop()
            raise
        self.started_at = datetime.now(UTC)
        self.start_s = time.perf_counter() - began
        return self

    def stop(self) -> None:
        """Stop every thread and server, PostgreSQL (its own) or this world's database (a shared
        server), and delete the data folder it created. Idempotent; safe after a failed start."""
        self.traffic.stop()
        self.service.stop()
        for standin in (self.slack, self.pagerduty, self.sentry, self.provider):
            if standin is not None and standin.server.listening:
                standin.stop()
        self.apis.stop()
        if self.k8s is not None:
            self.k8s.stop()
            self.k8s = None
        if self._own_pg:
            self.postgres.stop()
        elif self.postgres.running:
            self._drop_database()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _drop_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.postgres.dsn("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.db_name))
            )

    def _trim(self, keep: int = 5000) -> None:
        """Long runs under traffic: forget what the service and the APIs recorded beyond `keep` requests."""
        for server in (self.service.server, *(api.server for api in self.apis.apis.values())):
            if len(server.requests) > keep:
                server.reset_requests()

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def kubeconfig_path(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'incidents.sqlite3'}"

    @property
    def dsn(self) -> str:
        """The service's database, as `psql -h $DB_HOST` reaches it."""
        return self.postgres.dsn(self.db_name)

    def settings_env(self) -> dict[str, str]:
        """The RUNBOOK_* environment that points the runbooks at this world (runbook.settings)."""
        if self.k8s is None:
            raise RuntimeError("World.settings_env(): start() the world first")
        apis = [
            {"name": api, "health_url": self.apis.health_url(api), "feature_flag": flag, "feature": feature}
            for flag, (feature, api) in FEATURE_FLAGS.items()
            if api is not None
        ]
        env = {
            "RUNBOOK_ENVIRONMENT": "sandbox",
            "RUNBOOK_SERVICE_NAME": SERVICE,
            "RUNBOOK_SERVICE_BASE_URL": self.service.url,
            "RUNBOOK_SERVICE_ADMIN_TOKEN": ADMIN_TOKEN,
            "RUNBOOK_KUBERNETES_API_URL": self.k8s.url,
            "RUNBOOK_KUBERNETES_NAMESPACE": NAMESPACE,
            "RUNBOOK_KUBERNETES_DEPLOYMENT": DEPLOYMENT,
            "RUNBOOK_DATABASE_DSN": self.dsn,
            "RUNBOOK_EXTERNAL_APIS": json.dumps(apis),
            "RUNBOOK_SLACK_API_URL": f"{self.slack.url}/api",
            "RUNBOOK_SLACK_TOKEN": SLACK_TOKEN,
            "RUNBOOK_PAGERDUTY_EVENTS_URL": f"{self.pagerduty.url}/v2/enqueue",
            "RUNBOOK_PAGERDUTY_ROUTING_KEY": DEFAULT_ROUTING_KEY,
            "RUNBOOK_SENTRY_API_URL": f"{self.sentry.url}/api/0",
            "RUNBOOK_SENTRY_TOKEN": SENTRY_TOKEN,
            "RUNBOOK_SENTRY_ORG": "emotionscare",
            "RUNBOOK_SENTRY_PROJECT": SERVICE,
            "RUNBOOK_STORE_URL": self.store_url,
        }
        if self.provider is not None:
            env |= {
                "RUNBOOK_DATABASE_SUPABASE_API_URL": self.provider.url,
                "RUNBOOK_DATABASE_SUPABASE_PROJECT_REF": PROVIDER_PROJECT,
                "RUNBOOK_DATABASE_SUPABASE_TOKEN": PROVIDER_TOKEN,
            }
        return env

    # -- the Deployment ---------------------------------------------------------------------------
    def _seed(self) -> None:
        now = datetime.now(UTC)
        self.cluster.seed_deployment(
            NAMESPACE, DEPLOYMENT, PREVIOUS_IMAGE, replicas=BASE_REPLICAS, env=dict(BASE_ENV),
            created_at=now - timedelta(days=3),
        )  # fmt: skip
        self.rollout(GOOD_IMAGE, ago=timedelta(days=1), cause="deploy v1.1.0 (commit 8d2e4f1: mood insights)")
        self._baseline = self.cluster.get("Deployment", NAMESPACE, DEPLOYMENT)["spec"]["template"]

    @contextmanager
    def backdated(self, ago: timedelta) -> Iterator[None]:
        """The cluster's clock reads `ago` earlier while inside (objects created then carry that time)."""
        if not ago:
            yield
            return
        with self.lock:
            real = self.cluster.clock
            moment = datetime.now(UTC) - ago
            self.cluster.clock = lambda: moment
            try:
                yield
            finally:
                self.cluster.clock = real

    def patch_deployment(self, patch: dict[str, Any], ago: timedelta = timedelta(0)) -> None:
        """A strategic merge patch of `prod/emotionscare`, as `kubectl set image/env` sends it. Back-dated
        (`ago`): rolled out completely at that time. Now: the controller starts the rollout at once and
        the background ticks finish it (`pod_start_delay_s` per pod)."""
        with self.lock, self.backdated(ago):
            self.cluster.apply_patch("Deployment", NAMESPACE, DEPLOYMENT, patch, patch_type="strategic")
            if ago or self.k8s is None:
                self.cluster.settle(instant=True)
            else:
                self.cluster.tick()
        self.service.sync()

    def rollout(self, image: str, ago: timedelta = timedelta(0), cause: str | None = None) -> None:
        """Roll out `image` (a template change), as if it happened `ago` before now."""
        patch: dict[str, Any] = {
            "spec": {"template": {"spec": {"containers": [{"name": DEPLOYMENT, "image": image}]}}}
        }
        if cause:
            patch["metadata"] = {"annotations": {"kubernetes.io/change-cause": cause}}
        self.patch_deployment(patch, ago)

    def set_env(self, env: dict[str, str], cause: str | None = None) -> None:
        """`kubectl set env deployment/emotionscare K=V ...` (a new rollout)."""
        container = {"name": DEPLOYMENT, "env": [{"name": k, "value": v} for k, v in env.items()]}
        patch: dict[str, Any] = {"spec": {"template": {"spec": {"containers": [container]}}}}
        if cause:
            patch["metadata"] = {"annotations": {"kubernetes.io/change-cause": cause}}
        self.patch_deployment(patch)

    def deployment(self) -> dict[str, Any]:
        return self.cluster.get("Deployment", NAMESPACE, DEPLOYMENT)

    def live_image(self) -> str:
        """The image of the Deployment's current template (the revision taking the traffic)."""
        return str(self.deployment()["spec"]["template"]["spec"]["containers"][0]["image"])

    def live_env(self) -> dict[str, str]:
        container = self.deployment()["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}

    def revision(self) -> int:
        """The Deployment's `deployment.kubernetes.io/revision`."""
        return int(self.deployment()["metadata"]["annotations"]["deployment.kubernetes.io/revision"])

    def restore_baseline(self) -> list[str]:
        """The seeded template (v1.1.0, `BASE_ENV`), two replicas, not paused: what changed, in words."""
        changed: list[str] = []
        with self.lock:
            dep = self.deployment()
            if dep["spec"].get("paused"):
                self.cluster.apply_patch(
                    "Deployment", NAMESPACE, DEPLOYMENT, {"spec": {"paused": False}}, "merge"
                )
                changed.append("resumed the rollout")
            if dep["spec"]["template"] != self._baseline:
                patch = [{"op": "replace", "path": "/spec/template", "value": self._baseline}]
                self.cluster.apply_patch("Deployment", NAMESPACE, DEPLOYMENT, patch, patch_type="json")
                changed.append(f"template back to {GOOD_IMAGE} with the base env")
            if dep["spec"].get("replicas") != BASE_REPLICAS:
                self.cluster.patch_scale(NAMESPACE, DEPLOYMENT, {"spec": {"replicas": BASE_REPLICAS}})
                changed.append(f"scaled back to {BASE_REPLICAS} replicas")
            if changed:
                self.cluster.settle(instant=True)
        self.service.sync()
        return changed

    def restart_database(self) -> str:
        """The provider's restart: PostgreSQL restarted, or started when down (lifts `db-down`)."""
        with self.lock:
            if self.postgres.running:
                self.postgres.stop()
                self.postgres.start()
                return "database restarted"
            self.postgres.start()
            self.fault_state.pop("db-down", None)
            return "database started"

    # -- faults -----------------------------------------------------------------------------------
    def inject(self, name: str, arg: str | None = None, **args: Any) -> str:
        """Inject fault `name` (sandbox/faults.py): its one positional argument as `arg` (the CLI's
        `api-down hume`, `error-rate 8`) and/or by keyword; returns what changed, in a sentence."""
        return faults.inject(self, name, arg, **args)

    def clear(self, name: str | None = None) -> str:
        """Remove fault `name` (its cause lifted), or every fault and the world healthy again."""
        return faults.clear(self, name)

    def active_faults(self) -> list[str]:
        with self.lock:
            return list(self.fault_state)

    def reset(self, timeout_s: float = 10.0) -> None:
        """Healthy and empty: every fault cleared, the baseline Deployment, the stand-ins and the
        service's memory wiped; waits until `/api/health` answers 200 (between tests)."""
        self.clear()
        self.restore_baseline()
        for standin in (self.slack, self.pagerduty, self.sentry):
            standin.reset()
        self.apis.reset()
        self.service.reset_state()
        self.service.reset_db_pool("sandbox reset")
        self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 10.0) -> None:
        """Poll until the rollout is complete and `/api/health` answers 200 (AssertionError after)."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            self.service.sync()
            dep = self.deployment()
            status = dep.get("status") or {}
            want = int(dep["spec"].get("replicas", 0))
            if status.get("updatedReplicas", 0) == want == status.get("availableReplicas", 0):
                try:
                    response = httpx.get(self.service.url + "/api/health", timeout=2.0)
                    if response.status_code == 200:
                        return
                    last = f"/api/health {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = f"/api/health: {type(exc).__name__}"
            else:
                last = f"rollout: {status}"
            time.sleep(0.02)
        raise AssertionError(f"sandbox world not healthy after {timeout_s}s ({last})")

    def step(self, count: int = 1) -> None:
        """Move memory and CPU `count` steps forward now (tests; `up` steps every `step_interval_s`)."""
        for _ in range(count):
            self.service.sync()
            self.service.step()

    advance_leak = step

    def status(self) -> dict[str, Any]:
        """What is live and what is broken, for `python -m sandbox status` and the control API."""
        dep = self.deployment()
        revision = self.service.revision
        with self.lock:
            active = {name: f.describe() for name, f in self.fault_state.items()}
        return {
            "faults": active,
            "deployment": {
                "name": f"{NAMESPACE}/{DEPLOYMENT}",
                "image": self.live_image(),
                "revision": self.revision(),
                "replicas": dep["spec"].get("replicas"),
                "ready": len(self.service.ready_pods),
                "env": self.live_env(),
                "bad": bool(revision and revision.bad),
            },
            "service": {
                "url": self.service.url,
                "listening": self.service.server.listening,
                "db_pool": self.service.db.stats(),
                "metrics": {k: v for k, v in self.service.stats.window().items() if k != "routes"},
            },
            "postgres": "running" if self.postgres.running else "stopped",
            "apis": {name: self.apis.mode(name) for name in API_NAMES},
        }
