"""What each fault does to one service of the world, and how it is undone: one function per fault,
`(target, active, **args) -> Applied`, where `target` is the service's `sandbox.world.WorldService`
(`world.unit(name)`: its app, Deployment and database, and the world's shared parts).
sandbox/faults/__init__.py names them and their parameters.

A fault whose effect can be seen in the world also says how (`Applied.still`), so a fault undone by a
rollback or a person is no longer reported as active."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.world import WorldService

from sandbox.faults.model import ActiveFault, Applied, FaultArgError, FaultConflict

# ---- the faults ---------------------------------------------------------------------------------------


def bad_deploy(
    target: WorldService, active: ActiveFault | None, mode: str, crash: bool, ago_min: float
) -> Applied:
    crashing = crash or mode == "crash"
    tag = "v1.2.0-bad" if crashing else "v1.2.0-broken"
    image = f"{target.image_repo}:{tag}"
    live = target.live_image()
    revision = target.service.revision
    # The way back is the image that was live before the first bad deploy, unless that was bad too.
    good = (
        active.memo["good"]
        if active
        else (live if revision is not None and not revision.bad else target.good_image)
    )
    target.rollout(
        image, ago=timedelta(minutes=ago_min), cause=f"deploy {tag} (commit f00dbad: journal sync refactor)"
    )
    when = f"{ago_min:g} min ago" if ago_min else "now"
    what = "new pods crash-loop, /api/health 500" if crashing else "pods run, every /api/* call answers 500"
    memo = {"good": good}

    def undo() -> str:
        if target.live_image() != image:
            return f"bad-deploy: already rolled back (live: {target.live_image()})"
        target.rollout(good, cause=f"rollback to {good.rsplit(':', 1)[-1]} (sandbox clear)")
        return f"bad-deploy: {good} rolled out again"

    return Applied(
        f"deployed {image} {when} ({what}); previous good image {good}",
        undo,
        memo,
        still=lambda: target.live_image() == image,
    )


def infra_down(target: WorldService, active: ActiveFault | None) -> Applied:
    target.service.ingress_down = True
    target.service.sync()

    def undo() -> str:
        target.service.ingress_down = False
        target.service.sync()
        return "infra-down: the load balancer is back"

    return Applied(
        "load balancer gone: /health and every endpoint refuse connections",
        undo,
        still=lambda: target.service.ingress_down,
    )


def db_down(target: WorldService, active: ActiveFault | None) -> Applied:
    if not target.owns_server:  # the server is shared: only this service's database goes away
        return _database_closed(target)
    target.postgres.stop()

    def undo() -> str:
        if target.postgres.running:
            return "db-down: PostgreSQL already running"
        target.postgres.start()
        return "db-down: PostgreSQL started (the service's pool still holds dead connections until reset)"

    return Applied(
        f"PostgreSQL on {target.postgres.host}:{target.postgres.port} stopped",
        undo,
        still=lambda: not target.postgres.running,
    )


def _database_closed(target: WorldService) -> Applied:
    """db-down for a service whose database shares the server: its database refuses connections and
    its open ones are ended (what it sees of its database server going away)."""
    name = target.db_name
    admin(target, _alter_database(name, "false"))
    _end_connections(target)

    def undo() -> str:
        if not target.postgres.running:
            return f"db-down: PostgreSQL is stopped; database {name} opens with it"
        admin(target, _alter_database(name, "true"))
        return f"db-down: database {name} accepts connections again (the pool holds dead ones until reset)"

    def still() -> bool:
        if not target.postgres.running:
            return True
        return not admin(target, "SELECT datallowconn FROM pg_database WHERE datname = %s", (name,))

    return Applied(f"database {name} refuses connections (its server's others are up)", undo, still=still)


def db_pool_stale(target: WorldService, active: ActiveFault | None) -> Applied:
    require_database(target, "db-pool-stale")
    generation = target.service.db.generation
    if target.owns_server:
        target.postgres.stop()
        target.postgres.start()
        what = "PostgreSQL restarted"
    else:  # the server is shared: only this database's connections are ended, as a restart would
        _end_connections(target)
        what = f"database {target.db_name}'s connections ended (as by a restart)"

    def undo() -> str:
        if target.service.db.generation != generation:
            return "db-pool-stale: the pool was already rebuilt"
        target.service.reset_db_pool("sandbox clear")
        return "db-pool-stale: the service's pool reset"

    return Applied(
        f"{what}; the service's pool keeps its dead connections until reset or a rollout",
        undo,
        still=lambda: target.service.db.generation == generation,
    )


def db_pool_exhausted(target: WorldService, active: ActiveFault | None, size: int) -> Applied:
    env = target.live_env()
    previous = active.memo["previous"] if active else env.get("DB_POOL_SIZE", "5")
    target.set_env({"DB_POOL_SIZE": str(size)}, cause=f"config: DB_POOL_SIZE={size}")
    listeners = len(target.service.db.LISTEN_CHANNELS)

    def undo() -> str:
        now = target.live_env().get("DB_POOL_SIZE")
        if now != str(size):
            return f"db-pool-exhausted: DB_POOL_SIZE already changed (={now})"
        target.set_env({"DB_POOL_SIZE": previous}, cause=f"config: DB_POOL_SIZE={previous} (sandbox clear)")
        return f"db-pool-exhausted: DB_POOL_SIZE={previous} rolled out again"

    message = f"DB_POOL_SIZE={size} rolled out (was {previous}); {listeners} LISTEN connections hold the pool"
    still = lambda: target.live_env().get("DB_POOL_SIZE") == str(size)  # noqa: E731
    return Applied(message, undo, {"previous": previous}, still=still)


def api_down(
    target: WorldService, active: ActiveFault | None, api: str, mode: str, delay_s: float
) -> Applied:
    target.apis.set_mode(api, mode, delay_s=delay_s)

    def undo() -> str:
        target.apis.set_mode(api, "up")
        return f"api-down: {api} up again"

    what = {
        "down-refused": "refuses connections",
        "down-5xx": "answers 503",
        "slow": f"answers after {delay_s:g}s",
    }
    return Applied(
        f"{api} {what[mode]} ({target.apis.health_url(api)})",
        undo,
        still=lambda: target.apis.mode(api) != "up",
    )


def memory_leak(target: WorldService, active: ActiveFault | None, rate_mb: float) -> Applied:
    target.service.load.memory_leak_bytes_per_step = rate_mb * 1024 * 1024
    target.step(2)

    def undo() -> str:
        calm(target, memory=True)
        return "memory-leak: stopped; usage back to baseline"

    return Applied(
        f"memory leaking {rate_mb:g} MiB per step across the pods (OOMKilled at the 512Mi limit)",
        undo,
        still=lambda: target.service.load.memory_leak_bytes_per_step > 0,
    )


def cpu_hog(target: WorldService, active: ActiveFault | None, demand_m: int) -> Applied:
    target.service.load.cpu_demand_m = float(demand_m)
    target.step(2)

    def undo() -> str:
        calm(target, memory=False)
        return "cpu-hog: stopped; usage back to baseline"

    return Applied(
        f"CPU demand {demand_m}m across the pods: usage climbs to the 1-core limit",
        undo,
        still=lambda: target.service.load.cpu_demand_m > 0,
    )


def slow_query(target: WorldService, active: ActiveFault | None, ms: float) -> Applied:
    require_database(target, "slow-query")
    sql(
        target,
        "CREATE OR REPLACE VIEW journal_feed AS SELECT e.id, e.user_id, e.mood, e.body, e.created_at "
        f"FROM journal_entries e WHERE (SELECT true FROM pg_sleep({ms / 1000:.3f}))",
    )

    def undo() -> str:
        require_database(target, "slow-query")
        sql(
            target,
            "CREATE OR REPLACE VIEW journal_feed AS "
            "SELECT e.id, e.user_id, e.mood, e.body, e.created_at FROM journal_entries e",
        )
        return "slow-query: journal_feed view restored"

    return Applied(
        f"journal_feed view replaced by a migration: every journal read takes {ms:g} ms in PostgreSQL", undo
    )


def error_rate(target: WorldService, active: ActiveFault | None, pct: float) -> Applied:
    target.service.error_rate_pct = pct

    def undo() -> str:
        target.service.error_rate_pct = 0.0
        return "error-rate: back to 0%"

    return Applied(
        f"{pct:g}% of feature requests answer 500 (TypeError in src/users/profile.ts)",
        undo,
        still=lambda: target.service.error_rate_pct > 0,
    )


def journal_broken(target: WorldService, active: ActiveFault | None) -> Applied:
    require_database(target, "journal-broken")
    sql(
        target,
        "ALTER TABLE journal_entries ADD COLUMN IF NOT EXISTS sentiment_score real; "
        "ALTER TABLE journal_entries DROP CONSTRAINT IF EXISTS journal_entries_sentiment_required; "
        "ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_sentiment_required "
        "CHECK (sentiment_score IS NOT NULL) NOT VALID",
    )

    def undo() -> str:
        require_database(target, "journal-broken")
        sql(
            target,
            "ALTER TABLE journal_entries DROP CONSTRAINT IF EXISTS journal_entries_sentiment_required; "
            "ALTER TABLE journal_entries DROP COLUMN IF EXISTS sentiment_score",
        )
        return "journal-broken: migration reverted (constraint and column dropped)"

    return Applied(
        "migration made journal_entries.sentiment_score mandatory: creating entries fails, reading works",
        undo,
    )


def calm(target: WorldService, memory: bool) -> None:
    load = target.service.load
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
    target.step(1)


def require_database(target: WorldService, fault: str) -> None:
    if target.db_name is None:
        raise FaultArgError(f"{fault}: service {target.name} has no database")
    if not target.postgres.running:
        raise FaultConflict(f"{fault}: PostgreSQL is stopped (db-down); clear db-down first")


def sql(target: WorldService, statement: str) -> None:
    import psycopg  # here, not at the top: the CLI imports this module for the fault list only

    with psycopg.connect(target.dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement.encode())


def admin(target: WorldService, statement: Any, params: tuple[Any, ...] = ()) -> Any:
    """Run `statement` (a literal or a `psycopg.sql` composition) on the server's `postgres` database;
    the first column of its first row (or None)."""
    import psycopg

    with psycopg.connect(target.postgres.dsn("postgres"), autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement, params or None)
        row = cursor.fetchone() if cursor.description else None
        return None if row is None else row[0]


def _alter_database(name: str | None, allow: str) -> Any:
    from psycopg import sql as pgsql

    verb = pgsql.SQL("true" if allow == "true" else "false")
    return pgsql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(pgsql.Identifier(str(name)), verb)


def _end_connections(target: WorldService) -> None:
    admin(
        target,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (target.db_name,),
    )
