"""`World`: the assembly. It wires and resets the parts, each of which lives in its own module
(sandbox.world.unit for one service's, sandbox.k8s, the stand-ins, sandbox.provider, sandbox.traffic,
sandbox.faults); starting and stopping them is sandbox.world.lifecycle, the settings environment
sandbox.world.environment, the status report sandbox.world.report. See the package docstring for what
starts."""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox import faults
from sandbox.external_apis import ExternalApis
from sandbox.k8s import Cluster, ClusterServer
from sandbox.pagerduty import PagerDutyStandIn
from sandbox.postgres import EmbeddedPostgres
from sandbox.provider import DatabaseProvider
from sandbox.sentry import SentryStandIn
from sandbox.service import EmotionsCare
from sandbox.slack import SlackStandIn
from sandbox.traffic import SyntheticTraffic
from sandbox.world import environment, report
from sandbox.world.lifecycle import start_parts, stop_parts
from sandbox.world.specs import (
    ADMIN_TOKEN,
    API_KEYS,
    IMAGE_REPO,
    PORT_OFFSETS,
    SENTRY_TOKEN,
    SLACK_TOKEN,
    Services,
    specs_for,
)
from sandbox.world.unit import WorldService

__all__ = ["World"]

_SLACK_CHANNELS = ("incidents", "alerts-critical", "alerts", "devops", "general")


class World:
    """Everything the runbooks act on, on 127.0.0.1. See the package docstring."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        services: Services = "one",
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
        """`services`: "one" (emotionscare alone, today's world) or "many" (emotionscare and payments on
        cluster east, search on cluster west). `leak_interval_s` is the older name of `step_interval_s`
        (resource steps: memory, CPU, OOM kills; 0 = at every pass of the service's follow loop, every
        `sync_interval_s` and at each change of its pods, besides each `step()`)."""
        specs = specs_for(services)
        self.many = services == "many"
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="runbook-world-")).resolve()
        self.host = host
        self.port_base = port_base
        self._own_pg = postgres is None
        self.postgres = postgres or EmbeddedPostgres(
            data_dir=self.data_dir / "postgres", port=self.port_for("postgres"), host=host
        )
        self.tick_interval_s = tick_interval_s
        self.image_repo = IMAGE_REPO
        self.lock = threading.RLock()
        self._cluster_objects = {
            name: Cluster(pod_start_delay_s=pod_start_delay_s)
            for name in dict.fromkeys(s.cluster for s in specs)
        }
        self.clusters: dict[str, ClusterServer] = {}
        """Cluster name → its running Kubernetes API emulator (after `start()`)."""
        channels = (*_SLACK_CHANNELS, *(c.lstrip("#") for s in specs for c in s.channels))
        self.slack = SlackStandIn(token=SLACK_TOKEN, channels=tuple(dict.fromkeys(channels)))
        self.pagerduty = PagerDutyStandIn(routing_keys=tuple(dict.fromkeys(s.routing_key for s in specs)))
        self.sentry = SentryStandIn(
            token=SENTRY_TOKEN, org="emotionscare", projects=tuple(s.name for s in specs), platform="node"
        )
        self.apis = ExternalApis(keys=API_KEYS)
        self.provider: DatabaseProvider | None = (
            DatabaseProvider(self.restart_database, lambda: self.postgres.running)
            if database_provider
            else None
        )
        app = {
            "admin_token": ADMIN_TOKEN,
            "db_acquire_timeout_s": db_acquire_timeout_s,
            "db_open_wait_s": db_open_wait_s,
            "sync_interval_s": sync_interval_s,
            "step_interval_s": step_interval_s if leak_interval_s is None else leak_interval_s,
        }
        suffix = "" if self._own_pg else f"_{uuid.uuid4().hex[:10]}"  # a shared server: names of its own
        self.units: list[WorldService] = []
        for spec in specs:
            db_name = f"{spec.name}{suffix}" if spec.database else None
            keys = API_KEYS if spec.external_apis else None
            self.units.append(
                WorldService(self, spec, self._cluster_objects[spec.cluster], db_name, api_keys=keys, **app)
            )
        self.traffic = SyntheticTraffic(lambda: self.service.url, traffic_rate_per_s, every_1000=self._trim)
        self.started_at: datetime | None = None
        self.start_s: float | None = None
        """Seconds `start()` took (the fixture's cost)."""

    # -- the services -----------------------------------------------------------------------------
    @property
    def service_names(self) -> list[str]:
        """The services' names; the first is the default target of faults and of the settings."""
        return [u.name for u in self.units]

    def unit(self, name: str | None = None) -> WorldService:
        """The service `name` (None: the first); KeyError naming the known ones otherwise."""
        if name is None:
            return self.units[0]
        for unit in self.units:
            if unit.name == name:
                return unit
        raise KeyError(f"no service {name!r} in this world; services: {', '.join(self.service_names)}")

    @property
    def service(self) -> EmotionsCare:
        """The first service's app (today's `world.service`)."""
        return self.units[0].service

    @property
    def cluster(self) -> Cluster:
        """The first service's cluster."""
        return self.units[0].cluster

    @property
    def k8s(self) -> ClusterServer | None:
        """The first service's cluster's emulator (None before `start()`)."""
        return self.clusters.get(self.units[0].cluster_name)

    @property
    def db_name(self) -> str:
        db_name = self.units[0].db_name
        if db_name is None:  # the first service is emotionscare, which has one
            raise ValueError("the first service has no database")
        return db_name

    @property
    def fault_state(self) -> dict[str, faults.ActiveFault]:
        """The first service's faults (name → record)."""
        return self.units[0].fault_state

    # -- lifecycle --------------------------------------------------------------------------------
    def port_for(self, name: str) -> int:
        """The port `name` listens on: `port_base + offset`, or 0 (a free one) without a base."""
        return self.port_base + PORT_OFFSETS[name] if self.port_base is not None else 0

    def start(self, on_progress: Callable[[str], None] | None = None) -> World:
        """Start everything (see the package docstring); `on_progress(line)` hears each step.
        On any failure what was started is stopped again and the error raised."""
        say = on_progress or (lambda _line: None)
        began = time.perf_counter()
        try:
            start_parts(self, say)
        except BaseException:
            self.stop()
            raise
        self.started_at = datetime.now(UTC)
        self.start_s = time.perf_counter() - began
        return self

    def stop(self) -> None:
        """Stop every thread and server, PostgreSQL (its own) or this world's databases (a shared
        server), and delete the data folder it created. Idempotent; safe after a failed start."""
        stop_parts(self)

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
    def catalogue_path(self) -> Path:
        """The service catalogue the world writes (a world of many services; runbook.catalogue's format)."""
        return self.data_dir / "catalogue.yaml"

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'incidents.sqlite3'}"

    @property
    def dsn(self) -> str:
        """The first service's database, as `psql -h $DB_HOST` reaches it."""
        return self.units[0].dsn

    def settings_env(self) -> dict[str, str]:
        """The RUNBOOK_* environment that points the runbooks at this world (runbook.settings): the first
        service's; a world of many adds RUNBOOK_CATALOGUE, the kubeconfig of its clusters' contexts and
        the variables the catalogue's `{env: ...}` references name."""
        return environment.settings_env(self)

    # -- the first service's Deployment (today's API; `unit(name)` for the others) -----------------
    @contextmanager
    def backdated(self, ago: timedelta) -> Iterator[None]:
        """The first service's cluster's clock reads `ago` earlier while inside."""
        with self.units[0].backdated(ago):
            yield

    def patch_deployment(self, patch: dict[str, Any], ago: timedelta = timedelta(0)) -> None:
        """A strategic merge patch of `prod/emotionscare` (see `WorldService.patch_deployment`)."""
        self.units[0].patch_deployment(patch, ago)

    def rollout(self, image: str, ago: timedelta = timedelta(0), cause: str | None = None) -> None:
        """Roll out `image` on the first service (a template change), as if it happened `ago` before now."""
        self.units[0].rollout(image, ago, cause)

    def set_env(self, env: dict[str, str], cause: str | None = None) -> None:
        """`kubectl set env deployment/emotionscare K=V ...` (a new rollout)."""
        self.units[0].set_env(env, cause)

    def deployment(self) -> dict[str, Any]:
        return self.units[0].deployment()

    def live_image(self) -> str:
        """The image of the first service's current template (the revision taking the traffic)."""
        return self.units[0].live_image()

    def live_env(self) -> dict[str, str]:
        return self.units[0].live_env()

    def revision(self) -> int:
        """The first service's Deployment's `deployment.kubernetes.io/revision`."""
        return self.units[0].revision()

    def restore_baseline(self) -> list[str]:
        """Every service's seeded template, two replicas, not paused: what changed, in words."""
        return [line for unit in self.units for line in unit.restore_baseline()]

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
    def inject(self, name: str, arg: str | None = None, *, service: str | None = None, **args: Any) -> str:
        """Inject fault `name` (sandbox/faults) on `service` (default: the first): its one positional
        argument as `arg` (the CLI's `api-down hume`, `error-rate 8`) and/or by keyword; returns what
        changed, in a sentence."""
        return faults.inject(self, name, arg, service=service, **args)

    def clear(self, name: str | None = None, service: str | None = None) -> str:
        """Remove fault `name` (its cause lifted; on `service`, default the first), or every fault (of
        `service`, or of every service) and the world healthy again."""
        return faults.clear(self, name, service=service)

    def active_faults(self, service: str | None = None) -> list[str]:
        """The faults in force on `service` (default: the first), read from the world's state."""
        return self.unit(service).active_faults()

    def reset(self, timeout_s: float = 10.0) -> None:
        """Healthy and empty: every fault cleared, the baseline Deployments, the stand-ins and the
        services' memory wiped; waits until every `/api/health` answers 200 (between tests)."""
        self.clear()
        self.restore_baseline()
        for standin in (self.slack, self.pagerduty, self.sentry):
            standin.reset()
        self.apis.reset()
        for unit in self.units:
            unit.service.reset_state()
            unit.service.reset_db_pool("sandbox reset")
        self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 10.0) -> None:
        """Poll until every service's rollout is complete and its `/api/health` answers 200."""
        deadline = time.monotonic() + timeout_s
        for unit in self.units:
            unit.wait_healthy(max(0.1, deadline - time.monotonic()))

    def step(self, count: int = 1) -> None:
        """Move the first service's memory and CPU `count` steps forward now."""
        self.units[0].step(count)

    advance_leak = step

    def status(self) -> dict[str, Any]:
        """What is live and what is broken, for `python -m sandbox status` and the control API: the first
        service's as before, and under `services` each service's cluster, namespace, Deployment, health
        URLs and active faults."""
        return report.status(self)
