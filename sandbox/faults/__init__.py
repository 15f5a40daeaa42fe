"""Faults, injected and cleared by name, each visible through the signals production would show.

Usage::

    inject(world, "bad-deploy")                     # a broken release, deployed now
    inject(world, "bad-deploy", ago_min=120)         # ... two hours ago (a runbook sees an old deploy)
    inject(world, "bad-deploy", mode="crash")        # ... whose pods crash-loop
    inject(world, "api-down", "hume", mode="5xx")    # the positional argument, as on the command line
    inject(world, "error-rate", "8")                 # 8% of requests fail
    inject(world, "bad-deploy", service="payments")  # on another service of the world (default: the first)
    clear(world, "db-down")                          # lift one cause (PostgreSQL back)
    clear(world, service="payments")                 # every fault of one service, it healthy again
    clear(world)                                     # every fault removed, the world healthy
    parse_cli("api-down", ["hume", "--mode", "5xx"]) # {"api": "hume", "mode": "5xx"} (CLI spelling)

| fault | what production shows | what fixes it |
|---|---|---|
| `bad-deploy [--mode api-500\\|crash] [--ago-min N]` | a new revision (`…:v1.2.0-broken`): pods run, every `/api/*` answers 500 with a `TypeError` (logs, Sentry); `crash`: `…:v1.2.0-bad`, new pods CrashLoopBackOff, `/api/health` 500 | rolling back (`kubectl rollout undo`) |
| `infra-down` | `/health` refuses connections (the load balancer in front of the pods is gone) | clear |
| `db-down` | PostgreSQL stopped: `SELECT 1` refused, `/api/health` 500 `database unreachable` | only bringing PostgreSQL back (clear, or the provider's restart: the guide's option 3); the pool then holds dead connections: reset it |
| `db-pool-stale` | PostgreSQL restarted under the app: `SELECT 1` works, `/api/health` 500 (connection lost, then pool exhausted) | option 1 `/admin/reset-db-pool`, or any new rollout (option 2) |
| `db-pool-exhausted [--size 2]` | `DB_POOL_SIZE=2` rolled out; the app's 2 LISTEN connections take the pool: `/api/health` 500 `no connection free` | only a bigger `DB_POOL_SIZE` (option 2: `=10`); a reset builds the same small pool |
| `api-down NAME [--mode refused\\|5xx\\|slow]` | that API refuses connections / answers 503 / is slow; its feature endpoint answers 502 | the API coming back (clear) |
| `memory-leak [--rate-mb 48]` | pod memory climbs each step, `WARN memory usage high`, then `FATAL: OutOfMemory` + `JavaScript heap out of memory` and a restart with reason OOMKilled | scaling up slows it (per pod); clear |
| `cpu-hog [--demand-m 2400]` | pod CPU climbs to the 1-core limit, `event loop blocked` warnings, requests throttled (p95 up), liveness restarts (reason Error) | scaling to 3 replicas brings each pod under the limit; clear |
| `slow-query [--ms 3500]` | the journal feed view sleeps `ms` in PostgreSQL (a bad migration): `GET /api/journal` p95 above 3 s in `/metrics` | clear (the migration reverted) |
| `error-rate PCT` | exactly PCT% of feature requests answer 500 (`TypeError … 'preferences'`): error rate in `/metrics` and Sentry | clear (or a rollback) |
| `journal-broken` | `POST /api/journal` 500: a migration made `sentiment_score` mandatory (check constraint); reads work | clear (the constraint dropped) |

A fault acts on one service (`sandbox.world.WorldService`); one that needs what a service lacks (a
database, external APIs: `NEEDS`) is refused for it with a `FaultArgError` naming both. On a service
whose database shares the server with the first's, `db-down` closes its database only (connections
refused) and `db-pool-stale` ends its connections only. A fault undone by a rollback or a person is no
longer in force (`ActiveFault.in_force()`), though its record stays until cleared.

Clearing one fault lifts its cause as production would; `clear()` with no name also resets the
service's pool and restores the external APIs, so the world is healthy afterwards. Re-injecting an
active fault applies the new arguments and keeps the original way back (e.g. the good image).

The package: `model` (parameters, the active-fault record, the errors), `effects` (what each fault
does and how it is undone), and here the registry and `inject`, `clear`, `parse_cli`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.world import World, WorldService

from sandbox.faults import effects
from sandbox.faults.model import (
    ActiveFault,
    Applied,
    Fault,
    FaultArgError,
    FaultConflict,
    Param,
    UnknownFault,
)

__all__ = [
    "FAULTS",
    "NEEDS",
    "ActiveFault",
    "Applied",
    "Fault",
    "FaultArgError",
    "FaultConflict",
    "Param",
    "UnknownFault",
    "clear",
    "fault_names",
    "inject",
    "parse_cli",
    "target",
]


# ---- the registry -------------------------------------------------------------------------------------

_API_MODES = {"refused": "down-refused", "5xx": "down-5xx", "down": "down-refused"}

FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "bad-deploy",
            "a broken release deployed now: pods run and /api/* answers 500 (mode=crash: pods crash-loop)",
            (
                Param("mode", str, "api-500", "api-500: the code fails; crash: pods CrashLoopBackOff",
                      choices=("api-500", "crash")),
                Param("crash", bool, False, "same as mode=crash"),
                Param("ago_min", float, 0.0, "deployed this many minutes ago", minimum=0, maximum=7 * 24 * 60),
            ),
            effects.bad_deploy,
        ),
        Fault("infra-down", "the load balancer is gone: /health refuses connections", (), effects.infra_down),
        Fault("db-down", "PostgreSQL stopped: nothing but bringing it back fixes it", (), effects.db_down),
        Fault(
            "db-pool-stale",
            "PostgreSQL restarted under the app: its pool holds dead connections until reset (option 1)",
            (),
            effects.db_pool_stale,
        ),
        Fault(
            "db-pool-exhausted",
            "DB_POOL_SIZE too small rolled out: only a bigger DB_POOL_SIZE fixes it (option 2)",
            (Param("size", int, 2, "the bad DB_POOL_SIZE (<= 2: the LISTEN connections take it all)",
                   minimum=0, maximum=2),),
            effects.db_pool_exhausted,
        ),
        Fault(
            "api-down",
            "an external API down: refused (default), 5xx or slow",
            (
                Param("api", str, "hume", "hume, openai or spotify", positional=True, choices=("hume", "openai", "spotify")),
                Param("mode", str, "down-refused", "refused, 5xx or slow",
                      choices=("down-refused", "down-5xx", "slow"), aliases=_API_MODES),
                Param("delay_s", float, 5.0, "how slow in mode slow (seconds)", minimum=0, maximum=120),
            ),
            effects.api_down,
        ),
        Fault(
            "memory-leak",
            "pod memory climbs to the limit: OOM lines in the logs, restarts with reason OOMKilled",
            (Param("rate_mb", float, 48.0, "MiB leaked per step (two pods)", minimum=1, maximum=512),),
            effects.memory_leak,
        ),
        Fault(
            "cpu-hog",
            "pod CPU climbs to the limit: throttled requests, liveness restarts",
            (Param("demand_m", int, 2400, "extra millicores the app wants (two pods)", minimum=100, maximum=16000),),
            effects.cpu_hog,
        ),
        Fault(
            "slow-query",
            "journal reads slow in PostgreSQL: p95 climbs above 3 s",
            (Param("ms", float, 3500.0, "milliseconds each journal read sleeps", positional=True, minimum=1,
                   maximum=60_000),),
            effects.slow_query,
        ),
        Fault(
            "error-rate",
            "PCT% of feature requests answer 500",
            (Param("pct", float, 8.0, "share of requests that fail (0 < PCT <= 100)", positional=True,
                   minimum=0.01, maximum=100),),
            effects.error_rate,
        ),
        Fault("journal-broken", "creating journal entries fails (a constraint violation), reading works", (),
              effects.journal_broken),
    )
}  # fmt: skip


def fault_names() -> list[str]:
    return list(FAULTS)


def _fault(name: str) -> Fault:
    fault = FAULTS.get(name)
    if fault is None:
        raise UnknownFault(f"unknown fault {name!r}; valid: {', '.join(FAULTS)} (and clear)")
    return fault


# What a fault acts on that not every service has: it is refused on a service without it.
NEEDS: dict[str, str] = {
    "db-down": "database",
    "db-pool-stale": "database",
    "db-pool-exhausted": "database",
    "slow-query": "database",
    "journal-broken": "database",
    "api-down": "external APIs",
}


def target(world: World, name: str, service: str | None) -> WorldService:
    """The service fault `name` acts on (None: the world's first); `FaultArgError` naming the known
    services for an unknown one, or what the service lacks that the fault needs."""
    try:
        unit = world.unit(service)
    except KeyError:
        raise FaultArgError(
            f"{name}: service: no service {service!r}; services: {', '.join(world.service_names)}"
        ) from None
    needs = NEEDS.get(name)
    lacks = (needs == "database" and unit.db_name is None) or (
        needs == "external APIs" and not unit.spec.external_apis
    )
    if lacks:
        raise FaultArgError(f"{name}: service {unit.name} has no {needs} (the fault acts on its {needs})")
    return unit


def inject(world: World, name: str, arg: Any = None, *, service: str | None = None, **kwargs: Any) -> str:
    """Inject fault `name` on `service` (default: the world's first); returns what changed, in a
    sentence. `UnknownFault`, `FaultArgError` (a bad argument or service, named) and `FaultConflict`
    (cannot act now) are raised before anything changes."""
    if name == "clear":
        return clear(world, service=service)
    fault = _fault(name)
    args = fault.args(arg, kwargs)
    unit = target(world, name, service)
    with world.lock:
        active = unit.fault_state.get(name)
        if active is not None and not active.in_force():
            active = None  # undone by a rollback or a person: this is a new fault with a new way back
        applied = fault.apply(unit, active, **args)
        undo, memo, still = applied.undo, applied.memo, applied.still
        if active is not None:
            undo, memo = active.undo, active.memo  # the original way back stays the way back
        unit.fault_state[name] = ActiveFault(
            name, args, applied.message, undo, datetime.now(UTC), memo, still
        )
    unit.service.sync()
    return applied.message


# Lifting order: the database first (other undos need it), then the rest, newest first.
_CLEAR_FIRST = ("db-down",)


def clear(world: World, name: str | None = None, *, service: str | None = None) -> str:
    """Lift fault `name` on `service` (default: the first), or every fault (of `service`, or of every
    service) and make those services healthy (pool reset, APIs up, no load)."""
    with world.lock:
        if name is not None:
            _fault(name)
            unit = target(world, name, service) if service is not None else world.unit(None)
            active = unit.fault_state.get(name)
            if active is None:
                return f"{name}: not active"
            message = active.undo()
            unit.fault_state.pop(name, None)
            unit.service.sync()
            return message
        units = world.units if service is None else [_unit(world, service)]
        held = [(u, f) for u in units for f in u.fault_state.values()]
        held.sort(key=lambda uf: (uf[1].name not in _CLEAR_FIRST, -uf[1].injected_at.timestamp()))
        lines = []
        for unit, active in held:
            line = active.undo()
            lines.append(line if len(world.units) == 1 else f"{unit.name}: {line}")
            unit.fault_state.pop(active.name, None)
        if not world.postgres.running:
            world.postgres.start()
            lines.append("PostgreSQL started")
        if service is None:
            world.apis.reset()  # shared by the services: only when every service is cleared
        for unit in units:
            unit.service.ingress_down = False
            unit.service.error_rate_pct = 0.0
            unit.service.load.clear()
            unit.service.sync()
            unit.service.reset_db_pool("sandbox clear")
    lines.append("healthy: pool reset, external APIs up")
    return "; ".join(lines)


def _unit(world: World, service: str) -> WorldService:
    try:
        return world.unit(service)
    except KeyError:
        raise FaultArgError(
            f"service: no service {service!r}; services: {', '.join(world.service_names)}"
        ) from None


def parse_cli(name: str, argv: Sequence[str]) -> dict[str, Any]:
    """The CLI spelling (`api-down hume --mode 5xx`, `bad-deploy --ago 20 --crash`) as keyword arguments,
    validated; `FaultArgError` names the bad one."""
    fault = _fault(name)
    by_option = {p.option: p for p in fault.params}
    if any(p.name == "ago_min" for p in fault.params):
        by_option["--ago"] = by_option["--ago-min"]
    positional = next((p for p in fault.params if p.positional), None)
    out: dict[str, Any] = {}
    rest = list(argv)
    while rest:
        token = rest.pop(0)
        if token.startswith("--"):
            option, eq, value = token.partition("=")
            param = by_option.get(option)
            if param is None:
                known = ", ".join(sorted(by_option)) or "none"
                raise FaultArgError(f"{name}: unknown option {option} (options: {known})")
            if param.kind is bool and not eq:
                out[param.name] = True
                continue
            if not eq:
                if not rest:
                    raise FaultArgError(f"{name}: {option} needs a value")
                value = rest.pop(0)
            out[param.name] = value
        elif positional is not None and positional.name not in out:
            out[positional.name] = token
        else:
            raise FaultArgError(f"{name}: unexpected argument {token!r}")
    return fault.args(None, out)
