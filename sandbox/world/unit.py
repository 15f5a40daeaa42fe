"""One service of the world and its parts: its Deployment on its cluster, the app that follows it, its
database (or none) and its faults. `world.unit("payments")` is one; `World` delegates today's
single-service methods (`rollout`, `live_image`, `wait_healthy`, ...) to its first.

Usage::

    unit = world.unit("payments")
    unit.rollout("registry.local/payments:v1.2.0", ago=timedelta(hours=2))
    unit.live_image(), unit.revision(), unit.deployment()
    unit.k8s.url, unit.k8s.requests()          # its cluster's emulator (shared with the cluster's others)
    unit.service.url                           # the app: /health, /api/health
    unit.active_faults()                       # the faults in force here, read from the world's state

The fault effects (sandbox/faults/effects.py) act on a unit: it offers what they use of the world
(`service`, `postgres`, `dsn`, `apis`, `lock`, `rollout`, `set_env`, `step`, ...) for this service.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from sandbox.external_apis import ExternalApis
from sandbox.k8s import Cluster, ClusterServer
from sandbox.pagerduty import PagerDutyStandIn
from sandbox.postgres import EmbeddedPostgres
from sandbox.provider import DatabaseProvider
from sandbox.sentry import SentryStandIn
from sandbox.service import EmotionsCare
from sandbox.slack import SlackStandIn
from sandbox.world.specs import BASE_REPLICAS, ServiceSpec

if TYPE_CHECKING:
    from sandbox import faults
    from sandbox.world.assembly import World

__all__ = ["WorldService"]


class WorldService:
    """One service of a `World`: its spec, cluster, Deployment, app and faults. See the module docstring."""

    def __init__(
        self, world: World, spec: ServiceSpec, cluster: Cluster, db_name: str | None, **app: Any
    ) -> None:
        self.world = world
        self.spec = spec
        self.name = spec.name
        self.namespace = spec.namespace
        self.deployment_name = spec.deployment
        self.cluster_name = spec.cluster
        self.cluster = cluster
        self.db_name = db_name
        """Its database on the world's PostgreSQL server; None: a service without one."""
        self.image_repo = spec.image_repo
        self.good_image = spec.good_image
        self.fault_state: dict[str, faults.ActiveFault] = {}
        self.service = EmotionsCare(
            cluster,
            world.postgres.dsn(db_name) if db_name else None,
            name=spec.name,
            namespace=spec.namespace,
            deployment=spec.deployment,
            sentry=world.sentry,
            **app,
        )
        self._baseline: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"WorldService({self.name!r}: {self.cluster_name}/{self.namespace}/{self.deployment_name})"

    # -- what the fault effects use of the world, for this service ----------------------------------
    @property
    def lock(self) -> Any:
        return self.world.lock

    @property
    def postgres(self) -> EmbeddedPostgres:
        return self.world.postgres

    @property
    def apis(self) -> ExternalApis:
        return self.world.apis

    @property
    def provider(self) -> DatabaseProvider | None:
        return self.world.provider

    @property
    def slack(self) -> SlackStandIn:
        return self.world.slack

    @property
    def pagerduty(self) -> PagerDutyStandIn:
        return self.world.pagerduty

    @property
    def sentry(self) -> SentryStandIn:
        return self.world.sentry

    @property
    def k8s(self) -> ClusterServer:
        """The emulator serving this service's cluster (the world must be started)."""
        server = self.world.clusters.get(self.cluster_name)
        if server is None:
            raise RuntimeError(f"{self.name}: cluster {self.cluster_name} is not served (start the world)")
        return server

    @property
    def owns_server(self) -> bool:
        """The first service: its database's faults may stop or restart the whole PostgreSQL server."""
        return self is self.world.units[0]

    @property
    def dsn(self) -> str:
        """Its database, as `psql -h $DB_HOST` reaches it (ValueError for a service without one)."""
        if self.db_name is None:
            raise ValueError(f"{self.name} has no database")
        return self.postgres.dsn(self.db_name)

    @property
    def health_urls(self) -> dict[str, str]:
        return {"health": f"{self.service.url}/health", "api_health": f"{self.service.url}/api/health"}

    # -- the Deployment ---------------------------------------------------------------------------
    def seed(self) -> None:
        """Its Deployment: the previous release three days ago, the good one a day ago and live."""
        now = datetime.now(UTC)
        self.cluster.seed_deployment(
            self.namespace, self.deployment_name, self.spec.previous_image, replicas=BASE_REPLICAS,
            env=dict(self.spec.env), created_at=now - timedelta(days=3),
        )  # fmt: skip
        self.rollout(
            self.good_image, ago=timedelta(days=1), cause="deploy v1.1.0 (commit 8d2e4f1: mood insights)"
        )
        self._baseline = self.deployment()["spec"]["template"]

    @contextmanager
    def backdated(self, ago: timedelta) -> Iterator[None]:
        """Its cluster's clock reads `ago` earlier while inside (objects created then carry that time)."""
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
        """A strategic merge patch of its Deployment, as `kubectl set image/env` sends it. Back-dated
        (`ago`): rolled out completely at that time. Now: the controller starts the rollout at once and
        the background ticks finish it (`pod_start_delay_s` per pod)."""
        with self.lock, self.backdated(ago):
            self.cluster.apply_patch(
                "Deployment", self.namespace, self.deployment_name, patch, patch_type="strategic"
            )
            if ago or self.world.clusters.get(self.cluster_name) is None:
                self.cluster.settle(instant=True)
            else:
                self.cluster.tick()
        self.service.sync()

    def rollout(self, image: str, ago: timedelta = timedelta(0), cause: str | None = None) -> None:
        """Roll out `image` (a template change), as if it happened `ago` before now."""
        patch: dict[str, Any] = {
            "spec": {"template": {"spec": {"containers": [{"name": self.deployment_name, "image": image}]}}}
        }
        if cause:
            patch["metadata"] = {"annotations": {"kubernetes.io/change-cause": cause}}
        self.patch_deployment(patch, ago)

    def set_env(self, env: dict[str, str], cause: str | None = None) -> None:
        """`kubectl set env deployment/NAME K=V ...` (a new rollout)."""
        container = {"name": self.deployment_name, "env": [{"name": k, "value": v} for k, v in env.items()]}
        patch: dict[str, Any] = {"spec": {"template": {"spec": {"containers": [container]}}}}
        if cause:
            patch["metadata"] = {"annotations": {"kubernetes.io/change-cause": cause}}
        self.patch_deployment(patch)

    def deployment(self) -> dict[str, Any]:
        return self.cluster.get("Deployment", self.namespace, self.deployment_name)

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
        """The seeded template (v1.1.0, its base env), two replicas, not paused: what changed, in words."""
        changed: list[str] = []
        ns, name = self.namespace, self.deployment_name
        with self.lock:
            dep = self.deployment()
            if dep["spec"].get("paused"):
                self.cluster.apply_patch("Deployment", ns, name, {"spec": {"paused": False}}, "merge")
                changed.append("resumed the rollout")
            if dep["spec"]["template"] != self._baseline:
                patch = [{"op": "replace", "path": "/spec/template", "value": self._baseline}]
                self.cluster.apply_patch("Deployment", ns, name, patch, patch_type="json")
                changed.append(f"template back to {self.good_image} with the base env")
            if dep["spec"].get("replicas") != BASE_REPLICAS:
                self.cluster.patch_scale(ns, name, {"spec": {"replicas": BASE_REPLICAS}})
                changed.append(f"scaled back to {BASE_REPLICAS} replicas")
            if changed:
                self.cluster.settle(instant=True)
        self.service.sync()
        return changed

    # -- health, steps, faults --------------------------------------------------------------------
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
        raise AssertionError(f"sandbox service {self.name} not healthy after {timeout_s}s ({last})")

    def step(self, count: int = 1) -> None:
        """Move memory and CPU `count` steps forward now (tests; `up` steps every `step_interval_s`)."""
        for _ in range(count):
            self.service.sync()
            self.service.step()

    def active_faults(self) -> list[str]:
        """The faults injected here whose effect is still in force (one a rollback or a person undid,
        e.g. a bad deploy no longer live, is not listed)."""
        with self.lock:
            held = list(self.fault_state.values())
        return [f.name for f in held if f.in_force()]

    def status(self) -> dict[str, Any]:
        """Where it runs and what is broken, for `python -m sandbox status --json`."""
        dep = self.deployment()
        revision = self.service.revision
        with self.lock:
            held = list(self.fault_state.values())
        return {
            "cluster": self.cluster_name,
            "api_url": self.k8s.url,
            "context": f"sandbox-{self.cluster_name}",
            "namespace": self.namespace,
            "deployment": self.deployment_name,
            "health_urls": self.health_urls,
            "database": self.db_name,
            "image": self.live_image(),
            "revision": self.revision(),
            "replicas": dep["spec"].get("replicas"),
            "ready": len(self.service.ready_pods),
            "bad": bool(revision and revision.bad),
            "active_faults": [{"name": f.name, **f.describe()} for f in held if f.in_force()],
        }
