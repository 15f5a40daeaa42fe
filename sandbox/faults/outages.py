"""Dependency outages: the Kubernetes API, Slack, PagerDuty, Sentry, the incident store and the Prefect
API failing, each as a fault (refuse, time out, answer 5xx) that `clear` undoes.

Usage::

    inject(world, "k8s-api-down", mode="5xx")       # every API call: 503 ServiceUnavailable
    inject(world, "slack-down", mode="refuse")      # the port refuses connections
    inject(world, "sentry-down", mode="timeout", delay_s=30)   # answers after 30 s (a client timeout)
    url = postgres_store(world)                     # RUNBOOK_STORE_URL: a store on the world's PostgreSQL
    inject(world, "store-down")                     # ... which then refuses every connection
    attach_prefect(world, Gate(api_url).start())    # the test's Prefect server behind a gate
    inject(world, "prefect-api-down", mode="refuse")

| fault | what a client sees | mode `refuse` / `timeout` / `5xx` |
|---|---|---|
| `k8s-api-down` | the Kubernetes API emulator fails every call (watches too) | the connection closed without an answer / an answer only after `delay_s` (the client's timeout first) / `503 ServiceUnavailable` |
| `slack-down`, `pagerduty-down`, `sentry-down` | the stand-in fails every call | ECONNREFUSED / answered after `delay_s` / HTTP 503 |
| `store-down` | the incident store's PostgreSQL database (`postgres_store`) refuses connections, open ones are ended | any mode: `database … is not currently accepting connections` |
| `prefect-api-down` | the gate in front of the Prefect server (`attach_prefect`) fails every connection | ECONNREFUSED / accepted, never answered / HTTP 503 |

The world's own incident store is a SQLite file, which a fault cannot take away from a process that has
it open; `store-down` therefore acts on a store in a PostgreSQL database of the world's server
(`postgres_store(world)` creates it, `drop_postgres_store(world)` removes it). The world does not run
the Prefect server either: `attach_prefect(world, gate)` names the gate the runbooks' `PREFECT_API_URL`
points at. `db-down` (the service's database) is in sandbox/faults/effects.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox.faults.gate import Gate
from sandbox.faults.model import ActiveFault, Applied, FaultConflict
from sandbox.http_messages import Response
from sandbox.httpserver import StandIn
from sandbox.k8s.errors import ApiError

if TYPE_CHECKING:
    from sandbox.world import World, WorldService

__all__ = [
    "MODES",
    "attach_prefect",
    "drop_postgres_store",
    "k8s_api_down",
    "pagerduty_down",
    "postgres_store",
    "prefect_api_down",
    "sentry_down",
    "slack_down",
    "store_database",
    "store_down",
]

MODES = ("refuse", "timeout", "5xx")
_GATES: dict[int, Gate] = {}


# ---- the Kubernetes API ---------------------------------------------------------------------------------


def k8s_api_down(target: WorldService, active: ActiveFault | None, mode: str, delay_s: float) -> Applied:
    server = target.k8s  # the service's own cluster's emulator
    if server is None:
        raise FaultConflict("k8s-api-down: the world is not started")
    original = active.memo["route"] if active else server.route
    lifted = threading.Event()

    def failing(*args: Any, **kwargs: Any) -> Any:
        if mode == "refuse":
            raise ConnectionResetError("k8s-api-down")  # the handler closes the connection, no answer
        if mode == "timeout" and lifted.wait(delay_s):
            return original(*args, **kwargs)  # lifted while waiting: answered late
        raise ApiError(
            503, "ServiceUnavailable", "the API server is unavailable (sandbox fault k8s-api-down)"
        )

    setattr(server, "route", failing)  # noqa: B010 (an instance attribute over the method, undone below)

    def undo() -> str:
        lifted.set()
        vars(server).pop("route", None)
        return "k8s-api-down: the Kubernetes API answers again"

    what = {"refuse": "closes every connection unanswered", "timeout": f"answers after {delay_s:g}s",
            "5xx": "answers 503 ServiceUnavailable"}[mode]  # fmt: skip
    return Applied(f"Kubernetes API {server.url} {what}", undo, {"route": original})


# ---- Slack, PagerDuty, Sentry -----------------------------------------------------------------------------


def _standin_down(name: str, standin: StandIn, mode: str, delay_s: float) -> Applied:
    server = standin.server
    if mode == "refuse":
        if server.listening:
            server.close_listener()
    elif mode == "timeout":
        server.delay_s = delay_s
    else:
        server.fault = lambda _request: Response.text("Service Unavailable", status=503)

    def undo() -> str:
        server.fault = None
        server.delay_s = 0.0
        if not server.listening and not server.stopped:
            server.reopen_listener()
        return f"{name}: {standin.name} answers again"

    what = {"refuse": "refuses connections", "timeout": f"answers after {delay_s:g}s", "5xx": "answers 503"}[
        mode
    ]
    return Applied(f"{standin.name} {standin.url} {what}", undo)


def _lift_first(active: ActiveFault | None) -> None:
    """Re-injecting with another mode: the previous mode is lifted first (its undo stays the way back)."""
    if active is not None:
        active.undo()


def slack_down(target: WorldService, active: ActiveFault | None, mode: str, delay_s: float) -> Applied:
    world = target.world
    _lift_first(active)
    return _standin_down("slack-down", world.slack, mode, delay_s)


def pagerduty_down(target: WorldService, active: ActiveFault | None, mode: str, delay_s: float) -> Applied:
    world = target.world
    _lift_first(active)
    return _standin_down("pagerduty-down", world.pagerduty, mode, delay_s)


def sentry_down(target: WorldService, active: ActiveFault | None, mode: str, delay_s: float) -> Applied:
    world = target.world
    _lift_first(active)
    return _standin_down("sentry-down", world.sentry, mode, delay_s)


# ---- the incident store ---------------------------------------------------------------------------------


def store_database(world: World) -> str:
    """The name of the incident store's database on the world's PostgreSQL server."""
    return f"{world.db_name}_store"


def postgres_store(world: World) -> str:
    """Create the incident store's database on the world's PostgreSQL server; its RUNBOOK_STORE_URL."""
    dsn = world.postgres.create_database(store_database(world))
    return dsn


def drop_postgres_store(world: World) -> None:
    """Remove the store's database (connections allowed again, ended, then dropped)."""
    _admin(world, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", missing_ok=True)
    _admin(world, "DROP DATABASE IF EXISTS {} WITH (FORCE)", missing_ok=True)


def _admin(world: World, statement: str, missing_ok: bool = False) -> bool:
    """Run `statement` ({} = the store's database) as the superuser; False when the database is missing."""
    import psycopg
    from psycopg import sql

    name = store_database(world)
    with psycopg.connect(world.postgres.dsn("postgres"), autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            if missing_ok:
                return False
            raise FaultConflict(
                f"store-down: no store database {name!r} on the world's PostgreSQL "
                "(point RUNBOOK_STORE_URL at sandbox.faults.outages.postgres_store(world) first)"
            )
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
    return True


def store_down(target: WorldService, active: ActiveFault | None, mode: str, delay_s: float) -> Applied:
    world = target.world
    if not world.postgres.running:
        raise FaultConflict("store-down: the world's PostgreSQL is stopped (db-down): clear it first")
    _admin(world, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false")

    def undo() -> str:
        if not world.postgres.running:
            return "store-down: PostgreSQL is stopped; the store comes back with it"
        _admin(world, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", missing_ok=True)
        return "store-down: the incident store accepts connections again"

    return Applied(f"incident store database {store_database(world)} refuses connections", undo)


# ---- the Prefect API ------------------------------------------------------------------------------------


def attach_prefect(world: World, gate: Gate) -> Callable[[], None]:
    """Name the gate in front of the Prefect server the runbooks use; returns the way to detach it."""
    _GATES[id(world)] = gate

    def detach() -> None:
        _GATES.pop(id(world), None)

    return detach


def prefect_api_down(target: WorldService, active: ActiveFault | None, mode: str, delay_s: float) -> Applied:
    world = target.world
    gate = _GATES.get(id(world))
    if gate is None:
        raise FaultConflict(
            "prefect-api-down: no Prefect gate attached (sandbox.faults.outages.attach_prefect(world, gate))"
        )
    gate.set_mode("5xx" if mode == "5xx" else "refuse" if mode == "refuse" else "timeout")

    def undo() -> str:
        gate.set_mode("open")
        return "prefect-api-down: the Prefect API answers again"

    return Applied(f"Prefect API behind {gate.url}: {mode}", undo)
