"""What each fault does to the world, and how it is undone: one function per fault, `(world, active,
**args) -> Applied`. sandbox/faults/__init__.py names them and their parameters."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.world import World

from sandbox.faults.model import ActiveFault, Applied, FaultConflict

# ---- the faults ---------------------------------------------------------------------------------------


def bad_deploy(world: World, active: ActiveFault | None, mode: str, crash: bool, ago_min: float) -> Applied:
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


def release_broken(world: World, active: ActiveFault | None, image: str) -> Applied:
    from sandbox.world import GOOD_IMAGE

    bad = image or GOOD_IMAGE
    world.cluster.bad_images.add(bad)

    def undo() -> str:
        world.cluster.bad_images.discard(bad)
        return f"release-broken: {bad} starts again"

    return Applied(f"{bad} crash-loops too: a rollback to it fails", undo)


def infra_down(world: World, active: ActiveFault | None) -> Applied:
    world.service.ingress_down = True
    world.service.sync()

    def undo() -> str:
        world.service.ingress_down = False
        world.service.sync()
        return "infra-down: the load balancer is back"

    return Applied("load balancer gone: /health and every endpoint refuse connections", undo)


def db_down(world: World, active: ActiveFault | None) -> Applied:
    world.postgres.stop()

    def undo() -> str:
        if world.postgres.running:
            return "db-down: PostgreSQL already running"
        world.postgres.start()
        return "db-down: PostgreSQL started (the service's pool still holds dead connections until reset)"

    return Applied(f"PostgreSQL on {world.postgres.host}:{world.postgres.port} stopped", undo)


def db_pool_stale(world: World, active: ActiveFault | None) -> Applied:
    require_database(world, "db-pool-stale")
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


def db_pool_exhausted(world: World, active: ActiveFault | None, size: int) -> Applied:
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


def api_down(world: World, active: ActiveFault | None, api: str, mode: str, delay_s: float) -> Applied:
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


def memory_leak(world: World, active: ActiveFault | None, rate_mb: float) -> Applied:
    world.service.load.memory_leak_bytes_per_step = rate_mb * 1024 * 1024
    world.step(2)

    def undo() -> str:
        calm(world, memory=True)
        return "memory-leak: stopped; usage back to baseline"

    return Applied(
        f"memory leaking {rate_mb:g} MiB per step across the pods (OOMKilled at the 512Mi limit)", undo
    )


def cpu_hog(world: World, active: ActiveFault | None, demand_m: int) -> Applied:
    world.service.load.cpu_demand_m = float(demand_m)
    world.step(2)

    def undo() -> str:
        calm(world, memory=False)
        return "cpu-hog: stopped; usage back to baseline"

    return Applied(f"CPU demand {demand_m}m across the pods: usage climbs to the 1-core limit", undo)


def slow_query(world: World, active: ActiveFault | None, ms: float) -> Applied:
    require_database(world, "slow-query")
    sql(
        world,
        "CREATE OR REPLACE VIEW journal_feed AS SELECT e.id, e.user_id, e.mood, e.body, e.created_at "
        f"FROM journal_entries e WHERE (SELECT true FROM pg_sleep({ms / 1000:.3f}))",
    )

    def undo() -> str:
        require_database(world, "slow-query")
        sql(
            world,
            "CREATE OR REPLACE VIEW journal_feed AS "
            "SELECT e.id, e.user_id, e.mood, e.body, e.created_at FROM journal_entries e",
        )
        return "slow-query: journal_feed view restored"

    return Applied(
        f"journal_feed view replaced by a migration: every journal read takes {ms:g} ms in PostgreSQL", undo
    )


def error_rate(world: World, active: ActiveFault | None, pct: float) -> Applied:
    world.service.error_rate_pct = pct

    def undo() -> str:
        world.service.error_rate_pct = 0.0
        return "error-rate: back to 0%"

    return Applied(f"{pct:g}% of feature requests answer 500 (TypeError in src/users/profile.ts)", undo)


def journal_broken(world: World, active: ActiveFault | None) -> Applied:
    require_database(world, "journal-broken")
    sql(
        world,
        "ALTER TABLE journal_entries ADD COLUMN IF NOT EXISTS sentiment_score real; "
        "ALTER TABLE journal_entries DROP CONSTRAINT IF EXISTS journal_entries_sentiment_required; "
        "ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_sentiment_required "
        "CHECK (sentiment_score IS NOT NULL) NOT VALID",
    )

    def undo() -> str:
        require_database(world, "journal-broken")
        sql(
            world,
            "ALTER TABLE journal_entries DROP CONSTRAINT IF EXISTS journal_entries_sentiment_required; "
            "ALTER TABLE journal_entries DROP COLUMN IF EXISTS sentiment_score",
        )
        return "journal-broken: migration reverted (constraint and column dropped)"

    return Applied(
        "migration made journal_entries.sentiment_score mandatory: creating entries fails, reading works",
        undo,
    )


def calm(world: World, memory: bool) -> None:
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


def require_database(world: World, fault: str) -> None:
    if not world.postgres.running:
        raise FaultConflict(f"{fault}: PostgreSQL is stopped (db-down); clear db-down first")


def sql(world: World, statement: str) -> None:
    import psycopg  # here, not at the top: the CLI imports this module for the fault list only

    with psycopg.connect(world.dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement.encode())
