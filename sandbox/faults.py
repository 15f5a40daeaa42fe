"""Faults, injected and cleared by name, each visible through the signals production would show.

Usage::

    inject(world, "bad-deploy")                     # a broken release, deployed now
    inject(world, "bad-deploy", ago_min=120)         # ... two hours ago (a runbook sees an old deploy)
    inject(world, "bad-deploy", mode="crash")        # ... whose pods crash-loop
    inject(world, "api-down", "hume", mode="5xx")    # the positional argument, as on the command line
    inject(world, "error-rate", "8")                 # 8% of requests fail
    clear(world, "db-down")                          # lift one cause (PostgreSQL back)
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

Clearing one fault lifts its cause as production would; `clear()` with no name also resets the
service's pool and restores the external APIs, so the world is healthy afterwards. Re-injecting an
active fault applies the new arguments and keeps the original way back (e.g. the good image).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.world import World

__all__ = [
    "FAULTS",
    "ActiveFault",
    "Fault",
    "FaultArgError",
    "FaultConflict",
    "Param",
    "UnknownFault",
    "clear",
    "fault_names",
    "inject",
    "parse_cli",
]

Undo = Callable[[], str]


@dataclass(frozen=True)
class Applied:
    """What applying a fault did (a sentence), how to undo it, and what it must remember."""

    message: str
    undo: Undo
    memo: dict[str, Any] = field(default_factory=dict)


class UnknownFault(ValueError):
    """No fault by that name (the message lists the valid ones)."""


class FaultArgError(ValueError):
    """A fault argument is missing, unknown or out of range (the message names it)."""


class FaultConflict(RuntimeError):
    """The fault cannot act in the world's current state (e.g. the database is stopped)."""


@dataclass(frozen=True)
class Param:
    """One argument of a fault: its keyword, type, default, bounds, and whether it is the positional one."""

    name: str
    kind: type
    default: Any
    help: str
    positional: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def coerce(self, fault: str, raw: Any) -> Any:
        label = f"{fault}: {self.name}"
        if self.kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise FaultArgError(f"{label} must be true or false (got {raw!r})")
        if self.kind in (int, float):
            if isinstance(raw, bool):
                raise FaultArgError(f"{label} must be a number (got {raw!r})")
            try:
                value: Any = self.kind(raw)
            except (TypeError, ValueError):
                raise FaultArgError(f"{label} must be a number (got {raw!r})") from None
            if self.minimum is not None and value < self.minimum:
                raise FaultArgError(f"{label} must be >= {self.minimum:g} (got {raw!r})")
            if self.maximum is not None and value > self.maximum:
                raise FaultArgError(f"{label} must be <= {self.maximum:g} (got {raw!r})")
            return value
        text = str(raw).strip()
        text = self.aliases.get(text, text)
        if self.choices and text not in self.choices:
            raise FaultArgError(f"{label} must be one of {', '.join(self.choices)} (got {raw!r})")
        return text


@dataclass(frozen=True)
class Fault:
    """A fault: its name, what it does, its arguments, and how it is applied."""

    name: str
    summary: str
    params: tuple[Param, ...]
    apply: Callable[..., Applied]

    def args(self, arg: Any = None, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Validated arguments: `arg` fills the positional parameter; unknown keywords are refused."""
        given = dict(kwargs or {})
        by_name = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(by_name))
        if unknown:
            known = ", ".join(by_name) or "none"
            raise FaultArgError(f"{self.name}: unknown argument(s) {', '.join(unknown)} (arguments: {known})")
        if arg is not None:
            positional = next((p for p in self.params if p.positional), None)
            if positional is None:
                raise FaultArgError(f"{self.name}: takes no positional argument (got {arg!r})")
            if positional.name in given:
                raise FaultArgError(f"{self.name}: {positional.name} given twice")
            given[positional.name] = arg
        return {
            p.name: p.coerce(self.name, given[p.name]) if given.get(p.name) is not None else p.default
            for p in self.params
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "args": [
                {
                    "name": p.name,
                    "positional": p.positional,
                    "default": p.default,
                    "choices": list(p.choices),
                    "help": p.help,
                }
                for p in self.params
            ],
        }


@dataclass
class ActiveFault:
    """A fault in force: its arguments, what it did, and how to undo it."""

    name: str
    args: dict[str, Any]
    message: str
    undo: Undo
    injected_at: datetime
    memo: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"args": self.args, "message": self.message, "injected_at": self.injected_at.isoformat()}


# ---- the faults ---------------------------------------------------------------------------------------


def _bad_deploy(world: World, active: ActiveFault | None, mode: str, crash: bool, ago_min: float) -> Applied:
    from sandbox.world import GOOD_IMAGE

    crashing = crash or mode == "crash"
    tag = "v1.2.0-bad" if crashing else "v1.2.0-broken"
    image = f"{world.image_repo}:{tag}"
    live = world.live_image()
    revision = world.service.revision
    # The way back is the image that was live before the first bad deploy, unless that was bad too.
    good = (
        active.memo["good"] if active else (live if revision is not None and not revision.bad else GOOD_IMAGE)
    )
    world.rollout(
        image, ago=timedelta(minutes=ago_min), cause=f"deploy {tag} (commit f00dbad: journal sync refactor)"
    )
    when = f"{ago_min:g} min ago" if ago_min else "now"
    what = "new pods crash-loop, /api/health 500" if crashing else "pods run, every /api/* call answers 500"
    memo = {"good": good}

    def undo() -> str:
        if world.live_image() != image:
            return f"bad-deploy: already rolled back (live: {world.live_image()})"
        world.rollout(good, cause=f"rollback to {good.rsplit(':', 1)[-1]} (sandbox clear)")
        return f"bad-deploy: {good} rolled out again"

    return Applied(f"deployed {image} {when} ({what}); previous good image {good}", undo, memo)


def _infra_down(world: World, active: ActiveFault | None) -> Applied:
    world.service.ingress_down = True
    world.service.sync()

    def undo() -> str:
        world.service.ingress_down = False
        world.service.sync()
        return "infra-down: the load balancer is back"

    return Applied("load balancer gone: /health and every endpoint refuse connections", undo)


def _db_down(world: World, active: ActiveFault | None) -> Applied:
    world.postgres.stop()

    def undo() -> str:
        if world.postgres.running:
            return "db-down: PostgreSQL already running"
        world.postgres.start()
        return "db-down: PostgreSQL started (the service's pool still holds dead connections until reset)"

    return Applied(f"PostgreSQL on {world.postgres.host}:{world.postgres.port} stopped", undo)


def _db_pool_stale(world: World, active: ActiveFault | None) -> Applied:
    _require_database(world, "db-pool-stale")
    generation = world.service.db.generation
    world.postgres.stop()
    world.postgres.start()

    def undo() -> str:
        if world.service.db.generation != generation:
            return "db-pool-stale: the pool was already rebuilt"
        world.service.reset_db_pool("sandbox clear")
        return "db-pool-stale: the service's pool reset"

    return Applied(
        "PostgreSQL restarted; the service's pool keeps its dead connections until reset or a rollout", undo
    )


def _db_pool_exhausted(world: World, active: ActiveFault | None, size: int) -> Applied:
    env = world.live_env()
    previous = active.memo["previous"] if active else env.get("DB_POOL_SIZE", "5")
    world.set_env({"DB_POOL_SIZE": str(size)}, cause=f"config: DB_POOL_SIZE={size}")
    listeners = len(world.service.db.LISTEN_CHANNELS)

    def undo() -> str:
        now = world.live_env().get("DB_POOL_SIZE")
        if now != str(size):
            return f"db-pool-exhausted: DB_POOL_SIZE already changed (={now})"
        world.set_env({"DB_POOL_SIZE": previous}, cause=f"config: DB_POOL_SIZE={previous} (sandbox clear)")
        return f"db-pool-exhausted: DB_POOL_SIZE={previous} rolled out again"

    message = f"DB_POOL_SIZE={size} rolled out (was {previous}); {listeners} LISTEN connections hold the pool"
    return Applied(message, undo, {"previous": previous})


def _api_down(world: World, active: ActiveFault | None, api: str, mode: str, delay_s: float) -> Applied:
    world.apis.set_mode(api, mode, delay_s=delay_s)

    def undo() -> str:
        world.apis.set_mode(api, "up")
        return f"api-down: {api} up again"

    what = {
        "down-refused": "refuses connections",
        "down-5xx": "answers 503",
        "slow": f"answers after {delay_s:g}s",
    }
    return Applied(f"{api} {what[mode]} ({world.apis.health_url(api)})", undo)


def _memory_leak(world: World, active: ActiveFault | None, rate_mb: float) -> Applied:
    world.service.load.memory_leak_bytes_per_step = rate_mb * 1024 * 1024
    world.step(2)

    def undo() -> str:
        _calm(world, memory=True)
        return "memory-leak: stopped; usage back to baseline"

    return Applied(
        f"memory leaking {rate_mb:g} MiB per step across the pods (OOMKilled at the 512Mi limit)", undo
    )


def _cpu_hog(world: World, active: ActiveFault | None, demand_m: int) -> Applied:
    world.service.load.cpu_demand_m = float(demand_m)
    world.step(2)

    def undo() -> str:
        _calm(world, memory=False)
        return "cpu-hog: stopped; usage back to baseline"

    return Applied(f"CPU demand {demand_m}m across the pods: usage climbs to the 1-core limit", undo)


def _slow_query(world: World, active: ActiveFault | None, ms: float) -> Applied:
    _require_database(world, "slow-query")
    _sql(
        world,
        "CREATE OR REPLACE VIEW journal_feed AS SELECT e.id, e.user_id, e.mood, e.body, e.created_at "
        f"FROM journal_entries e WHERE (SELECT true FROM pg_sleep({ms / 1000:.3f}))",
    )

    def undo() -> str:
        _require_database(world, "slow-query")
        _sql(
            world,
            "CREATE OR REPLACE VIEW journal_feed AS "
            "SELECT e.id, e.user_id, e.mood, e.body, e.created_at FROM journal_entries e",
        )
        return "slow-query: journal_feed view restored"

    return Applied(
        f"journal_feed view replaced by a migration: every journal read takes {ms:g} ms in PostgreSQL", undo
    )


def _error_rate(world: World, active: ActiveFault | None, pct: float) -> Applied:
    world.service.error_rate_pct = pct

    def undo() -> str:
        world.service.error_rate_pct = 0.0
        return "error-rate: back to 0%"

    return Applied(f"{pct:g}% of feature requests answer 500 (TypeError in src/users/profile.ts)", undo)


def _journal_broken(world: World, active: ActiveFault | None) -> Applied:
    _require_database(world, "journal-broken")
    _sql(
        world,
        "ALTER TABLE journal_entries ADD COLUMN IF NOT EXISTS sentiment_score real; "
        "ALTER TABLE journal_entries DROP CONSTRAINT IF EXISTS journal_entries_sentiment_required; "
        "ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_sentiment_required "
        "CHECK (sentiment_score IS NOT NULL) NOT VALID",
    )

    def undo() -> str:
        _require_database(world, "journal-broken")
        _sql(
            world,
            "ALTER TABLE journal_entries DROP CONSTRAINT IF EXISTS journal_entries_sentiment_required; "
            "ALTER TABLE journal_entries DROP COLUMN IF EXISTS sentiment_score",
        )
        return "journal-broken: migration reverted (constraint and column dropped)"

    return Applied(
        "migration made journal_entries.sentiment_score mandatory: creating entries fails, reading works",
        undo,
    )


def _calm(world: World, memory: bool) -> None:
    load = world.service.load
    if memory:
        load.memory_leak_bytes_per_step = 0.0
        for pod in load.pods.values():
            pod.leaked_bytes = 0.0
            pod.memory_band = 0
    else:
        load.cpu_demand_m = 0.0
        for pod in load.pods.values():
            pod.cpu_m = float(load.baseline_cpu_m)
            pod.saturated_steps = 0
    world.step(1)


def _require_database(world: World, fault: str) -> None:
    if not world.postgres.running:
        raise FaultConflict(f"{fault}: PostgreSQL is stopped (db-down); clear db-down first")


def _sql(world: World, statement: str) -> None:
    import psycopg  # here, not at the top: the CLI imports this module for the fault list only

    with psycopg.connect(world.dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement.encode())


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
            _bad_deploy,
        ),
        Fault("infra-down", "the load balancer is gone: /health refuses connections", (), _infra_down),
        Fault("db-down", "PostgreSQL stopped: nothing but bringing it back fixes it", (), _db_down),
        Fault(
            "db-pool-stale",
            "PostgreSQL restarted under the app: its pool holds dead connections until reset (option 1)",
            (),
            _db_pool_stale,
        ),
        Fault(
            "db-pool-exhausted",
            "DB_POOL_SIZE too small rolled out: only a bigger DB_POOL_SIZE fixes it (option 2)",
            (Param("size", int, 2, "the bad DB_POOL_SIZE (<= 2: the LISTEN connections take it all)",
                   minimum=0, maximum=2),),
            _db_pool_exhausted,
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
            _api_down,
        ),
        Fault(
            "memory-leak",
            "pod memory climbs to the limit: OOM lines in the logs, restarts with reason OOMKilled",
            (Param("rate_mb", float, 48.0, "MiB leaked per step (two pods)", minimum=1, maximum=512),),
            _memory_leak,
        ),
        Fault(
            "cpu-hog",
            "pod CPU climbs to the limit: throttled requests, liveness restarts",
            (Param("demand_m", int, 2400, "extra millicores the app wants (two pods)", minimum=100, maximum=16000),),
            _cpu_hog,
        ),
        Fault(
            "slow-query",
            "journal reads slow in PostgreSQL: p95 climbs above 3 s",
            (Param("ms", float, 3500.0, "milliseconds each journal read sleeps", positional=True, minimum=1,
                   maximum=60_000),),
            _slow_query,
        ),
        Fault(
            "error-rate",
            "PCT% of feature requests answer 500",
            (Param("pct", float, 8.0, "share of requests that fail (0 < PCT <= 100)", positional=True,
                   minimum=0.01, maximum=100),),
            _error_rate,
        ),
        Fault("journal-broken", "creating journal entries fails (a constraint violation), reading works", (),
              _journal_broken),
    )
}  # fmt: skip


def fault_names() -> list[str]:
    return list(FAULTS)


def _fault(name: str) -> Fault:
    fault = FAULTS.get(name)
    if fault is None:
        raise UnknownFault(f"unknown fault {name!r}; valid: {', '.join(FAULTS)} (and clear)")
    return fault


def inject(world: World, name: str, arg: Any = None, **kwargs: Any) -> str:
    """Inject fault `name`; returns what changed, in a sentence. `UnknownFault`, `FaultArgError`
    (a bad argument, named) and `FaultConflict` (cannot act now) are raised before anything changes."""
    if name == "clear":
        return clear(world)
    fault = _fault(name)
    args = fault.args(arg, kwargs)
    with world.lock:
        active = world.fault_state.get(name)
        applied = fault.apply(world, active, **args)
        undo, memo = applied.undo, applied.memo
        if active is not None:
            undo, memo = active.undo, active.memo  # the original way back stays the way back
        world.fault_state[name] = ActiveFault(name, args, applied.message, undo, datetime.now(UTC), memo)
    world.service.sync()
    return applied.message


# Lifting order: the database first (other undos need it), then the rest, newest first.
_CLEAR_FIRST = ("db-down",)


def clear(world: World, name: str | None = None) -> str:
    """Lift fault `name`, or every fault and make the world healthy (pool reset, APIs up, no load)."""
    with world.lock:
        if name is not None:
            _fault(name)
            active = world.fault_state.get(name)
            if active is None:
                return f"{name}: not active"
            message = active.undo()
            world.fault_state.pop(name, None)
            world.service.sync()
            return message
        names = sorted(world.fault_state, key=lambda n: (n not in _CLEAR_FIRST, -_order(world, n)))
        lines = []
        for fault_name in names:
            lines.append(world.fault_state[fault_name].undo())
            world.fault_state.pop(fault_name, None)
        if not world.postgres.running:
            world.postgres.start()
            lines.append("PostgreSQL started")
        world.service.ingress_down = False
        world.service.error_rate_pct = 0.0
        world.service.load.clear()
        world.apis.reset()
        world.service.sync()
        world.service.reset_db_pool("sandbox clear")
    lines.append("healthy: pool reset, external APIs up")
    return "; ".join(lines)


def _order(world: World, name: str) -> float:
    return world.fault_state[name].injected_at.timestamp()


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
