"""The demo's system: its ports, the environment its children get, and starting them all (the
Prefect server, the sandbox world, intake, the runners), then what it prints once they are ready.

Intake and the two runners are restarted when they die (`Supervisor(restart=True)`), as Kubernetes
restarts their pods: a `kill -9` of the warm `respond` runner is followed by a new one within seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from flows.automations import CrashDetectionSettings, heartbeat_env
from sandbox.control import CONTROL_VAR, control_url, read_env_file
from sandbox.private_files import write_private
from sandbox.supervise import StartFailed, Supervisor, http_ready

__all__ = ["SANDBOX_PORTS", "Demo", "DemoError", "Ports", "print_ready", "say", "start_all"]

SANDBOX_PORTS = 14  # `python -m sandbox up --port-base N` listens on N .. N+13
INTAKE_SOURCES = ("alertmanager", "generic", "grafana")


class DemoError(Exception):
    """One line for the terminal, exit 2 (bad settings, a port in use)."""


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Ports:
    prefect: int
    intake: int
    sandbox_base: int

    def all(self) -> dict[int, str]:
        ports = {self.prefect: "RUNBOOK_DEMO_PREFECT_PORT", self.intake: "RUNBOOK_INTAKE_PORT"}
        for p in range(self.sandbox_base, self.sandbox_base + SANDBOX_PORTS):
            ports.setdefault(p, "RUNBOOK_DEMO_SANDBOX_PORT_BASE")
        return ports


@dataclass
class Demo:
    """The running system: where each part answers, and what the children need in their environment."""

    root: Path
    var: Path
    ports: Ports
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    sandbox_env: dict[str, str] = field(default_factory=dict)
    prefect_db: str = "postgresql"
    """`postgresql` (the embedded server, its data in var/prefect-db) or `sqlite` (var/prefect)."""
    crash_detection: CrashDetectionSettings = field(default_factory=CrashDetectionSettings)
    respond_parameters: dict[str, Any] = field(default_factory=dict)
    """respond's parameters in the demo's warm runner (`flows.warm --parameters`): the waits shortened."""
    database: Any = None
    """The Prefect server's EmbeddedPostgres while it runs (`prefect_db == "postgresql"`)."""

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ports.prefect}"

    @property
    def api(self) -> str:
        return f"{self.ui}/api"

    @property
    def intake(self) -> str:
        return f"http://127.0.0.1:{self.ports.intake}"

    def env(self, **extra: str) -> dict[str, str]:
        """The children's environment: ours, Prefect pointed at the demo's server, the sandbox's RUNBOOK_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env |= {
            "PREFECT_HOME": str(self.var / "prefect"),
            "PREFECT_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        env |= heartbeat_env(self.crash_detection)  # the runners' flow runs say they are alive
        env |= self.sandbox_env
        env |= {
            "RUNBOOK_INTAKE_HOST": "127.0.0.1",
            "RUNBOOK_INTAKE_PORT": str(self.ports.intake),
            "RUNBOOK_INTAKE_TOKENS": json.dumps(dict.fromkeys(INTAKE_SOURCES, self.token)),
        }
        return env | extra

    def server_env(self) -> dict[str, str]:
        """The Prefect server's environment: the children's, plus its database when on PostgreSQL."""
        if self.database is None:
            return self.env()
        dsn = self.database.dsn("prefect").replace("postgresql://", "postgresql+asyncpg://", 1)
        return self.env(PREFECT_API_DATABASE_CONNECTION_URL=dsn)

    def start_database(self) -> None:
        """The embedded PostgreSQL for the Prefect server (no-op on SQLite)."""
        if self.prefect_db != "postgresql" or self.database is not None:
            return
        from sandbox.postgres import EmbeddedPostgres, PostgresStartFailed

        started = time.monotonic()
        try:
            self.database = EmbeddedPostgres(data_dir=self.var / "prefect-db", start_timeout_s=60).start()
        except PostgresStartFailed as exc:
            raise StartFailed(f"the Prefect server's PostgreSQL: {exc}") from exc
        self.database.create_database("prefect")
        say(
            f"✓ Prefect database (PostgreSQL on 127.0.0.1:{self.database.port}) ready ({time.monotonic() - started:.1f}s)"
        )

    def stop_database(self) -> None:
        database, self.database = self.database, None
        if database is not None:
            database.stop()


def _python() -> str:
    return sys.executable


def _wait(what: str, ready: Callable[[], bool], children: list[Any], timeout_s: float) -> None:
    """Poll `ready` until true; a child that exits meanwhile fails the start with its log's tail."""
    started = time.monotonic()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        for child in children:
            if not child.alive:
                raise StartFailed(
                    f"{child.name} exited with {child.proc.returncode}; last lines of {child.log_path}:\n"
                    f"{child.tail()}"
                )
        if ready():
            say(f"✓ {what} ready ({time.monotonic() - started:.1f}s)")
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {c.log_path}:\n{c.tail()}" for c in children)
    raise StartFailed(f"{what} not ready after {timeout_s:.0f}s\n{tails}")


def _deployments_registered(api: str, want: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            answer = httpx.post(f"{api}/deployments/count", json={}, timeout=2)
            return answer.status_code == 200 and int(answer.json()) >= want
        except (httpx.HTTPError, ValueError):
            return False

    return check


def start_all(sup: Supervisor, demo: Demo) -> None:
    from flows import catalogue

    python = _python()
    prefect_bin = str(Path(python).with_name("prefect"))
    demo.start_database()
    where = "PostgreSQL" if demo.database is not None else f"SQLite in {demo.var / 'prefect'}"
    say(f"starting the Prefect server ({where}) and the sandbox world, side by side")
    server = sup.start(
        "prefect-server",
        [prefect_bin, "server", "start", "--host", "127.0.0.1", "--port", str(demo.ports.prefect)],
        env=demo.server_env(),
        cwd=demo.root,
    )
    sandbox = sup.start(
        "sandbox",
        [python, "-m", "sandbox", "up", "--var", str(demo.var), "--port-base", str(demo.ports.sandbox_base)],
        env=demo.env(),
        cwd=demo.root,
    )
    env_file = demo.var / "sandbox.env"
    _wait("sandbox world", lambda: control_url(env_file) is not None, [sandbox], 60)
    demo.sandbox_env = read_env_file(env_file)
    _wait(f"Prefect server at {demo.ui}", http_ready(f"{demo.api}/health"), [server], 120)
    apply_crash_detection(demo)

    say("starting intake and the flow runners (restarted if they die, as Kubernetes restarts a pod)")
    env = demo.env()
    intake = sup.start("intake", [python, "-m", "intake"], env=env, cwd=demo.root, restart=True)
    warm_argv = [python, "-m", "flows.warm", "respond"]
    if demo.respond_parameters:
        warm_argv += ["--parameters", json.dumps(demo.respond_parameters)]
    warm = sup.start("runner-respond", warm_argv, env=env, cwd=demo.root, restart=True)
    serve = sup.start(
        "runner-serve",
        [python, "-m", "flows.serve", "--exclude", "respond"],
        env=env,
        cwd=demo.root,
        restart=True,
    )
    _wait(f"intake at {demo.intake}", http_ready(f"{demo.intake}/readyz"), [intake], 60)
    want = len(catalogue.entries())
    _wait(f"{want} deployments served", _deployments_registered(demo.api, want), [warm, serve], 120)
    sup.keep_restarting()


def apply_crash_detection(demo: Demo) -> None:
    """Create (or update in place) the automation that sets a run Crashed when its heartbeats stop."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.automations import apply

    with temporary_settings(updates={PREFECT_API_URL: demo.api}):
        applied = apply(demo.crash_detection)
    say(
        f"✓ crashed runs detected: {applied.line()}; heartbeats every {demo.crash_detection.heartbeat_s} s, "
        f"Crashed after {demo.crash_detection.window_s} s without one"
    )


def _write_env_file(demo: Demo) -> Path:
    """var/demo/demo.env: what a person needs in another shell (the intake token included, mode 600)."""
    path = demo.var / "demo.env"
    lines = {
        "PREFECT_API_URL": demo.api,
        "INTAKE_URL": demo.intake,
        "INTAKE_TOKEN": demo.token,
        CONTROL_VAR: demo.sandbox_env.get(CONTROL_VAR, ""),
    }
    return write_private(path, "".join(f"export {k}={v}\n" for k, v in lines.items()))


def print_ready(demo: Demo, started: float) -> None:
    env_file = _write_env_file(demo)
    slack = demo.sandbox_env.get("RUNBOOK_SLACK_API_URL", "")
    say(f"ready in {time.monotonic() - started:.1f}s")
    print(
        f"""
  Prefect UI      {demo.ui}    (Deployments: the runbooks, respond, the drills; Run › Custom run)
  intake          {demo.intake}/alerts/{{alertmanager,grafana,generic,sentry}}  (bearer token in {env_file})
  sandbox         python -m sandbox status --var {demo.var}   |   fault bad-deploy   |   clear
  Slack stand-in  {slack}/conversations.history?channel=…
  logs            {demo.var / "logs"}/

  Waits         respond watches {demo.respond_parameters.get("stability_window_s", 120):g} s for stability after the fix (the guide: 120 s;
                RUNBOOK_DEMO_STABILITY_WINDOW_S) and the runbooks settle {demo.respond_parameters.get("runbook_options", {}).get("settle_s", 30):g} s (RUNBOOK_DEMO_SETTLE_S)

  Try: in the UI, Deployments › service-down › Run › Custom run (dry_run, settle_s) after
       `python -m sandbox fault bad-deploy --var {demo.var}`; or a drill: drill-database-failure › Run.
""",
        flush=True,
    )
