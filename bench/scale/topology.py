"""The production topology on one machine: every process of deployments/, started and restarted here.

Usage::

    with Supervisor(var / "logs") as sup:
        topo = Topology(var, ROOT)
        topo.start(sup)                 # ~1-2 min on 2 cores; then topo.api, topo.intakes, topo.store_url
        ...
        topo.stop()                     # PostgreSQL, after the supervisor stopped the rest

What runs (each a process of its own, logs in `var/logs/`), as deployments/ runs them:

| process | here | deployments/ |
|---|---|---|
| PostgreSQL | one embedded server: databases `prefect` and `incidents` | postgres.yaml |
| Redis | Debian's `redis-server` | redis.yaml |
| Prefect API ×2 | `prefect server start --no-services`, one database, Redis messaging | prefect-server.yaml (2 replicas) |
| Prefect services ×1 | `prefect server services start` | prefect-server.yaml |
| warm runner ×2 | `python -m flows.warm respond` | respond-runner.yaml (2 replicas) |
| worker ×1 | `prefect worker start --type process`, the other deployments | prefect-worker.yaml (Kubernetes Jobs) |
| intake ×2 | `python -m intake`, one PostgreSQL store | intake.yaml |
| the world | `python -m sandbox up` (Kubernetes API, the service, Slack, PagerDuty) | the real ones |

Clients reach the two API processes through a loopback TCP proxy (bench/scale/proxy.py, round robin,
a refused backend skipped), as a Kubernetes Service spreads connections over the API pods. Migrations
run once before the API processes start (`prefect server database upgrade -y`), as the
prefect-db-upgrade Job does: two processes migrating one fresh database crash. Every process but
PostgreSQL, Redis and the world is started with `restart=True`: killed, it comes back (a pod).

`Topology(var, ROOT, one_machine=True)` is what `make demo` runs instead: one `prefect server start`
(API and services in one process, on PostgreSQL, no Redis), one warm runner, one intake, no worker
(respond's runbooks run as its subflows). It is there to measure the real response's latency on one
machine beside the production shape (`python -m bench.scale --one-machine --kills none none none`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.scale.proxy import RoundRobinProxy
from flows import catalogue
from sandbox.control import CONTROL_VAR, control_url, read_env_file
from sandbox.ports import free_port
from sandbox.supervise import Child, StartFailed, Supervisor, http_ready, port_free

__all__ = ["FAST_RESPOND", "Topology"]

FAST_RESPOND: dict[str, Any] = {
    "stability_window_s": 2.0,
    "escalation_poll_s": 0.5,
    "status_update_interval_s": 60.0,
    "runbook_options": {"settle_s": 0, "poll_interval_s": 0.2},
}
"""respond's defaults in the warm runners: the guide's waits (settle 30 s, stability 120 s) cut short."""

HEARTBEAT_S, WINDOW_S = 30, 45
"""Heartbeats of the warm runners' runs, and the zombie automation's window: the shortest Prefect allows
(a heartbeat at most every 30 s; the window covers one heartbeat plus 15 s), so a killed runner's run is
set Crashed 45-75 s after its last heartbeat and intake's sweeper starts the next generation."""
TOKEN = "scale-test-token"
POOL = "runbooks"


def _consecutive_free(count: int) -> int:
    """A base port with `count` free ports above it (the sandbox listens on base .. base+10)."""
    for _ in range(50):
        base = free_port()
        if base + count < 65535 and all(port_free(p) for p in range(base, base + count)):
            return base
    raise StartFailed(f"no {count} consecutive free ports found")


@dataclass
class Topology:
    var: Path
    root: Path
    api_ports: list[int] = field(default_factory=list)
    intake_ports: list[int] = field(default_factory=list)
    redis_port: int = 0
    database: Any = None
    proxy: RoundRobinProxy | None = None
    sandbox_env: dict[str, str] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    one_machine: bool = False

    @property
    def api(self) -> str:
        if self.one_machine:
            return f"http://127.0.0.1:{self.api_ports[0]}/api"
        assert self.proxy is not None
        return f"http://127.0.0.1:{self.proxy.port}/api"

    @property
    def intakes(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.intake_ports]

    @property
    def store_url(self) -> str:
        return str(self.database.dsn("incidents"))

    @property
    def token(self) -> str:
        return TOKEN

    # -- environments ------------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        """What every client gets: the API through the proxy, the world's settings, the shared store."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RUNBOOK_"))}
        env |= {
            "PREFECT_HOME": str(self.var / "prefect-home"),
            "PREFECT_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
            "RUNBOOK_PROJECT_DIR": str(self.root),
        }
        env |= self.sandbox_env
        env |= {
            "RUNBOOK_STORE_URL": self.store_url,
            "RUNBOOK_INTAKE_HOST": "127.0.0.1",
            "RUNBOOK_INTAKE_TOKENS": json.dumps({"alertmanager": TOKEN, "generic": TOKEN}),
            # Five incidents within minutes on one Deployment test the machinery, not the budget per
            # target (2 rollbacks an hour by default: the third would wait for a person's yes).
            "RUNBOOK_SAFETY_BUDGET_ROLLBACKS": "100",
        }
        return env | extra

    def server_env(self, port: int | None = None) -> dict[str, str]:
        """An API or services process: PostgreSQL, and Redis for messaging, ordering, leases, Docket."""
        dsn = self.database.dsn("prefect").replace("postgresql://", "postgresql+asyncpg://", 1)
        if self.one_machine:  # the demo's server: in-memory messaging, it migrates its own database
            env = self.env(PREFECT_API_DATABASE_CONNECTION_URL=dsn)
            env.pop("PREFECT_API_URL")
            return env | {"PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port)}
        redis = f"redis://127.0.0.1:{self.redis_port}"
        env = self.env(
            PREFECT_API_DATABASE_CONNECTION_URL=dsn,
            PREFECT_SERVER_DATABASE_MIGRATE_ON_START="false",
            PREFECT_MESSAGING_BROKER="prefect_redis.messaging",
            PREFECT_MESSAGING_CACHE="prefect_redis.messaging",
            PREFECT_SERVER_EVENTS_CAUSAL_ORDERING="prefect_redis.ordering",
            PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE="prefect_redis.lease_storage",
            PREFECT_REDIS_MESSAGING_HOST="127.0.0.1",
            PREFECT_REDIS_MESSAGING_PORT=str(self.redis_port),
            PREFECT_REDIS_MESSAGING_DB="0",
            PREFECT_SERVER_DOCKET_URL=f"{redis}/1",
        )
        env.pop("PREFECT_API_URL")
        if port is not None:
            env |= {"PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port)}
        return env

    # -- start -------------------------------------------------------------------------------------
    def start(self, sup: Supervisor) -> None:
        """Start everything, side by side where nothing orders them; return once every part answers."""
        from sandbox.postgres import EmbeddedPostgres

        python, prefect = sys.executable, str(Path(sys.executable).with_name("prefect"))
        if self.one_machine:
            self._start_one_machine(sup, python, prefect)
            return
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise StartFailed("redis-server not found: apt-get install redis-server (.ci/run does)")
        self.database = EmbeddedPostgres(data_dir=self.var / "postgres", start_timeout_s=60).start()
        for name in ("prefect", "incidents"):
            self.database.create_database(name)
        self.redis_port = free_port()
        redis_argv = [redis_server, "--bind", "127.0.0.1", "--port", str(self.redis_port)]
        self.children["redis"] = sup.start(
            "redis",
            [*redis_argv, "--save", "", "--appendonly", "no"],
            env=dict(os.environ),
            ready=lambda: not port_free(self.redis_port),
            timeout_s=30,
        )
        self.api_ports = [free_port(), free_port()]
        self.proxy = RoundRobinProxy([("127.0.0.1", p) for p in self.api_ports]).__enter__()
        self._start_sandbox(sup, python)
        # Migrations once, before any API process (the prefect-db-upgrade Job's part).
        upgrade = subprocess.run(
            [prefect, "server", "database", "upgrade", "-y"],
            env=self.server_env(),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if upgrade.returncode != 0:
            raise StartFailed(
                f"prefect server database upgrade: {upgrade.stdout[-2000:]}{upgrade.stderr[-2000:]}"
            )
        # Both API processes at once: one may exit on the block-type registration race at a first
        # start (deployments/prefect-server.yaml says so too); it is restarted, as its pod would be.
        for i, port in enumerate(self.api_ports, 1):
            self.children[f"api-{i}"] = sup.start(
                f"api-{i}",
                [prefect, "server", "start", "--no-services", "--host", "127.0.0.1", "--port", str(port)],
                env=self.server_env(port),
                cwd=self.root,
                restart=True,
            )
        self.children["services"] = sup.start(
            "services",
            [prefect, "server", "services", "start"],
            env=self.server_env(),
            cwd=self.root,
            restart=True,
        )
        self._start_clients(sup, python, "a Prefect API process", runners=2)
        self._deploy_the_rest(prefect)
        self.children["worker"] = sup.start(
            "worker",
            [prefect, "worker", "start", "--pool", POOL, "--type", "process"],
            env=self.env(),
            cwd=self.root,
            restart=True,
        )
        for i, port in enumerate(self.api_ports, 1):
            _poll(
                f"api-{i}", http_ready(f"http://127.0.0.1:{port}/api/health"), self.children[f"api-{i}"], 240
            )
        for i, url in enumerate(self.intakes, 1):
            _poll(f"intake-{i}", http_ready(f"{url}/readyz"), self.children[f"intake-{i}"], 120)
        for i in (1, 2):
            child = self.children[f"warm-{i}"]
            _poll(f"warm-{i}", _logged(child, "warm runner ready"), child, 120)
        sup.say("✓ every process answers")

    def _start_sandbox(self, sup: Supervisor, python: str) -> None:
        self.children["sandbox"] = sup.start(
            "sandbox",
            [
                *(python, "-m", "sandbox", "up", "--var", str(self.var)),
                *("--port-base", str(_consecutive_free(11)), "--pod-start-delay-s", "0.2", "--traffic", "1"),
            ],
            env=dict(os.environ) | {"PREFECT_HOME": str(self.var / "prefect-home")},
            cwd=self.root,
        )

    def _start_one_machine(self, sup: Supervisor, python: str, prefect: str) -> None:
        from sandbox.postgres import EmbeddedPostgres

        self.database = EmbeddedPostgres(data_dir=self.var / "postgres", start_timeout_s=60).start()
        for name in ("prefect", "incidents"):
            self.database.create_database(name)
        self._start_sandbox(sup, python)
        self.api_ports = [free_port()]
        self.children["api-1"] = sup.start(
            "api-1",
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.api_ports[0])],
            env=self.server_env(self.api_ports[0]),
            cwd=self.root,
            restart=True,
        )
        self._start_clients(sup, python, "the Prefect server", runners=1)
        _poll("intake-1", http_ready(f"{self.intakes[0]}/readyz"), self.children["intake-1"], 120)
        _poll("warm-1", _logged(self.children["warm-1"], "warm runner ready"), self.children["warm-1"], 120)
        sup.say("✓ every process answers (one machine)")

    def _start_clients(self, sup: Supervisor, python: str, api_name: str, runners: int) -> None:
        """Once the world and an API answer: the crashed-runs automation, the warm runners, the intakes."""
        sup.keep_restarting()
        env_file = self.var / "sandbox.env"
        _poll("the sandbox world", lambda: control_url(env_file) is not None, self.children["sandbox"], 120)
        self.sandbox_env = read_env_file(env_file)
        _poll(api_name, http_ready(f"{self.api}/health"), self.children["api-1"], 240)
        self._apply_crash_detection(python)
        warm = [python, "-m", "flows.warm", "respond", "--parameters", json.dumps(FAST_RESPOND)]
        for i in range(1, runners + 1):
            self.children[f"warm-{i}"] = sup.start(
                f"warm-{i}",
                warm,
                env=self.env(PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_S)),
                cwd=self.root,
                restart=True,
            )
        self.intake_ports = [free_port() for _ in range(runners)]
        for i, port in enumerate(self.intake_ports, 1):
            self.children[f"intake-{i}"] = sup.start(
                f"intake-{i}",
                [python, "-m", "intake"],
                env=self.env(RUNBOOK_INTAKE_PORT=str(port)),
                cwd=self.root,
                restart=True,
            )

    def _apply_crash_detection(self, python: str) -> None:
        """The zombie automation (the prefect-automations Job's part): a killed runner's run is set Crashed."""
        done = subprocess.run(
            [python, "-m", "flows.automations", "apply"],
            env=self.env(
                RUNBOOK_CRASH_DETECTION_HEARTBEAT_S=str(HEARTBEAT_S),
                RUNBOOK_CRASH_DETECTION_WINDOW_S=str(WINDOW_S),
            ),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise StartFailed(f"flows.automations apply: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def _deploy_the_rest(self, prefect: str) -> None:
        """prefect.yaml's deployments but respond (the warm runners register it) in the process pool."""
        env = self.env()
        subprocess.run(
            [prefect, "work-pool", "create", POOL, "--type", "process", "--overwrite"],
            env=env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        argv = [prefect, "--no-prompt", "deploy"]
        for entry in catalogue.entries():
            if entry.name != "respond":
                argv += ["--name", entry.name]
        done = subprocess.run(
            argv, env=env, cwd=self.root, capture_output=True, text=True, timeout=300, check=False
        )
        if done.returncode != 0:
            raise StartFailed(f"prefect deploy: {done.stdout[-3000:]}{done.stderr[-2000:]}")

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.__exit__(None, None, None)
        if self.database is not None:
            self.database.stop()

    def control(self) -> str:
        return self.sandbox_env[CONTROL_VAR]


def _logged(child: Child, text: str) -> Any:
    return lambda: text in child.log_path.read_text(errors="replace")


def _poll(what: str, ready: Any, child: Child, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not child.alive and not child.restart:
            raise StartFailed(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")
        time.sleep(0.2)
    raise StartFailed(f"{what} not ready after {timeout_s:.0f}s:\n{child.tail()}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False
