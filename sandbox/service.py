"""EmotionsCare, the service under care: an HTTP app that follows the emulator's live Deployment.

Usage::

    service = EmotionsCare(cluster, dsn, sentry=sentry, apis=apis.urls).start()  # a free port
    httpx.get(service.url + "/health")        # 200 while any pod of prod/emotionscare is Ready
    httpx.get(service.url + "/api/health")    # 500 + reason: bad revision or database unreachable
    httpx.post(service.url + "/admin/reset-db-pool", headers={"Authorization": "Bearer ..."})
    service.stop()

What it answers follows the Deployment `prod/emotionscare` (read in-process from the `Cluster`,
on every change and every `sync_interval_s`):

- Ready pods: none → the listener is closed for real (connection refused: the guide's
  "infrastructure issue"); it listens again, on the same port, when a pod is Ready again.
- The live revision is the Deployment's current template (the revision being rolled out takes the
  traffic). A bad image (`Cluster.is_bad_image`: its pods crash-loop) or a broken one (tag containing
  `broken`, or in `broken_images`: pods run but the code fails) makes every `/api/*` call answer 500.
- `DB_POOL_SIZE`: the size of its psycopg pool. Every new template is a new set of processes, so a
  template change (set env, rollout restart, rollback) builds a new pool.
- `FEATURE_*_ENABLED`: a feature whose flag is `false` answers 503 `feature_disabled`.

Endpoints: `GET /health`; `GET /api/health`; `POST /admin/reset-db-pool` (bearer token when
`admin_token` is set); `POST|GET /api/notifications`; `POST|GET /api/journal` (rows in its
PostgreSQL); `POST /api/music/generate` (Hume), `POST /api/coach` (OpenAI), `GET /api/music/playlists`
(Spotify); `GET /metrics` (Prometheus text; JSON with `?format=json` or `Accept: application/json`).

Like a real service it writes its logs into its pods' logs (`kubectl logs`), reports errors to the
Sentry stand-in (`capture_exception`) and its traffic (`record_requests`, so an error rate follows),
and its resource usage to metrics.k8s.io (`set_pod_usage`). See `Database` for the pool defect the
sandbox models, and `Load` for memory and CPU.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from sandbox.httpserver import HttpError, HttpServer, Request, Response
from sandbox.k8s import ApiError, Change, Cluster
from sandbox.sentry import Frame, SentryStandIn

__all__ = [
    "DEPLOYMENT",
    "FEATURE_FLAGS",
    "NAMESPACE",
    "SERVICE",
    "Database",
    "DatabaseUnavailable",
    "EmotionsCare",
    "Load",
    "RequestStats",
    "Revision",
]

log = logging.getLogger(__name__)

SERVICE = "emotionscare"
NAMESPACE = "prod"
DEPLOYMENT = "emotionscare"
POOL_SIZE_ENV = "DB_POOL_SIZE"
# flag → (feature, the external API it calls); the same mapping as runbook.settings' external_apis.
FEATURE_FLAGS: dict[str, tuple[str, str | None]] = {
    "FEATURE_MUSIC_GENERATION_ENABLED": ("music", "hume"),
    "FEATURE_AI_COACH_ENABLED": ("coach", "openai"),
    "FEATURE_MUSIC_PLAYBACK_ENABLED": ("playlists", "spotify"),
    "FEATURE_JOURNAL_ENABLED": ("journal", None),
}
SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_entries (
    id bigserial PRIMARY KEY,
    user_id text NOT NULL,
    mood text NOT NULL DEFAULT 'neutral',
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS journal_entries_user_created ON journal_entries (user_id, created_at DESC);
CREATE OR REPLACE VIEW journal_feed AS
    SELECT e.id, e.user_id, e.mood, e.body, e.created_at FROM journal_entries e;
"""
_MAX_LOG_BODY = 300
MAX_WINDOW_S = 3600.0
T = TypeVar("T")


# ---- the live revision ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    """What the Deployment's current template says the service is: image, env, flags, pool size."""

    number: str
    image: str
    env: Mapping[str, str]
    template_key: str
    replicas: int
    crashing: bool
    broken: bool

    @property
    def tag(self) -> str:
        last = self.image.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else "latest"

    @property
    def bad(self) -> bool:
        return self.crashing or self.broken

    @property
    def pool_size(self) -> int | None:
        """`DB_POOL_SIZE` as an int; None when it is missing or not a number (see `pool_size_error`)."""
        raw = self.env.get(POOL_SIZE_ENV, "10")
        try:
            return max(int(raw), 0)
        except ValueError:
            return None

    @property
    def pool_size_error(self) -> str | None:
        if self.pool_size is None:
            return f"{POOL_SIZE_ENV}={self.env.get(POOL_SIZE_ENV)!r} is not a number"
        return None

    def flag(self, name: str) -> bool:
        """A feature flag: on unless its env var says false/0/off/no."""
        return self.env.get(name, "true").strip().lower() not in ("false", "0", "off", "no")

    @property
    def features(self) -> dict[str, bool]:
        return {feature: self.flag(flag) for flag, (feature, _api) in FEATURE_FLAGS.items()}

    @classmethod
    def of(
        cls, deployment: dict[str, Any], is_bad_image: Callable[[str], bool], broken: set[str]
    ) -> Revision:
        template = deployment["spec"]["template"]
        container = template["spec"]["containers"][0]
        env = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}
        image = str(container["image"])
        key = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        return cls(
            number=(deployment["metadata"].get("annotations") or {}).get(
                "deployment.kubernetes.io/revision", "0"
            ),
            image=image,
            env=env,
            template_key=key,
            replicas=int(deployment["spec"].get("replicas", 1)),
            crashing=is_bad_image(image),
            broken=image in broken or "broken" in tag,
        )


# ---- the database -----------------------------------------------------------------------------------


class DatabaseUnavailable(Exception):
    """The app could not use its database (no pool, no free connection, connection lost)."""


class Database:
    """The app's connection pool: `psycopg_pool.ConnectionPool(min_size=max_size=DB_POOL_SIZE)`.

    Usage::

        db = Database(dsn, acquire_timeout_s=1.0)
        db.build(10, reason="startup")
        db.run(lambda conn: conn.execute("SELECT 1").fetchone())   # DatabaseUnavailable on failure
        db.build(10, reason="admin reset")                          # the guide's option 1
        db.close()

    Two traits of the app, both common in production code, make the guide's options meaningful:

    - It holds one connection per `LISTEN` channel (`journal_events`, `notifications`) for as long as
      the pool lives. With `DB_POOL_SIZE` at or below their number, no connection is ever free for a
      request: the pool is exhausted whatever is reset; only a larger `DB_POOL_SIZE` helps (option 2).
    - The defect: its pool does not validate connections, and when a connection is lost mid-request
      the error path neither returns nor closes it. After the database restarts, each request takes
      a dead connection, fails, and keeps it; soon no connection is free. Nothing heals that but a
      new pool: `/admin/reset-db-pool` (option 1) or a new rollout (option 2 rolls the pods).
    """

    LISTEN_CHANNELS = ("journal_events", "notifications")

    def __init__(
        self,
        dsn: str,
        acquire_timeout_s: float = 1.0,
        connect_timeout_s: float = 2.0,
        open_wait_s: float = 1.0,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self.dsn = dsn
        self.acquire_timeout_s = acquire_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.open_wait_s = open_wait_s
        self._log = on_log or (lambda _line: None)
        self._lock = threading.RLock()
        self._pool: ConnectionPool | None = None
        self._size: int | None = None
        self._listeners: list[psycopg.Connection[Any]] = []
        self._leaked: list[psycopg.Connection[Any]] = []
        self._generation = 0
        self.built_at: datetime | None = None
        self.last_reason = ""

    @property
    def size(self) -> int | None:
        return self._size

    @property
    def generation(self) -> int:
        """How many pools were built so far (each reset or rollout builds one)."""
        return self._generation

    def build(self, size: int | None, reason: str) -> dict[str, Any]:
        """Close the current pool (and every connection it handed out) and open a new one of `size`
        connections (None or 0: no pool). Waits at most `open_wait_s` for its connections."""
        with self._lock:
            closed = self._close_locked()
            self._generation += 1
            self._size = size
            self.built_at = datetime.now(UTC)
            self.last_reason = reason
            if not size:
                self._log(f"ERROR db pool not created: {POOL_SIZE_ENV}={size} ({reason})")
                return {"pool_size": size, "closed_connections": closed, "connections": 0}
            pool: ConnectionPool = ConnectionPool(
                self.dsn,
                min_size=size,
                max_size=size,
                open=False,
                timeout=self.acquire_timeout_s,
                name=f"{SERVICE}-{self._generation}",
                kwargs={
                    "connect_timeout": max(1, math.ceil(self.connect_timeout_s)),
                    "application_name": SERVICE,
                },
                reconnect_timeout=300.0,
            )
            pool.open(wait=False)
            self._pool = pool
        # Not `pool.wait()`: it closes the pool when the database is down, and the app keeps its pool.
        deadline = time.monotonic() + self.open_wait_s
        while True:
            self.maintain()
            with self._lock:
                held = len(self._listeners) if self._pool is pool else size
            if pool.get_stats().get("pool_available", 0) + held >= size:
                break
            if time.monotonic() > deadline:
                self._log(f"WARN db pool: connections not ready after {self.open_wait_s:g}s ({reason})")
                break
            time.sleep(0.005)
        stats = pool.get_stats()
        self._log(f"INFO db pool created: size={size} ({reason})")
        return {
            "pool_size": size,
            "closed_connections": closed,
            "connections": stats.get("pool_size", 0),
            "listeners": len(self._listeners),
        }

    def maintain(self) -> None:
        """Take the LISTEN connections the pool still owes (after a build while the database was down)."""
        with self._lock:
            pool = self._pool
            if pool is None:
                return
            while len(self._listeners) < len(self.LISTEN_CHANNELS):
                channel = self.LISTEN_CHANNELS[len(self._listeners)]
                try:
                    conn = pool.getconn(timeout=0.05)
                except (PoolTimeout, PoolClosed):
                    return
                try:
                    conn.autocommit = True
                    conn.execute(f"LISTEN {channel}")
                except psycopg.Error as exc:
                    self._log(f"WARN db listener {channel}: {_one_line(exc)}")
                    pool.putconn(conn)  # a broken one is discarded and replaced by the pool
                    return
                self._listeners.append(conn)

    def run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `fn(conn)` in a transaction on a pooled connection and commit.

        Raises `DatabaseUnavailable` when there is no pool, no free connection within
        `acquire_timeout_s`, or the connection is lost (which the app then keeps: the defect above);
        other `psycopg.Error`s (constraint violations, ...) propagate after a rollback.
        """
        with self._lock:
            pool, size = self._pool, self._size
        if pool is None:
            raise DatabaseUnavailable(f"no connection pool ({POOL_SIZE_ENV}={size})")
        try:
            conn = pool.getconn(timeout=self.acquire_timeout_s)
        except PoolTimeout as exc:
            in_use = self.in_use()
            raise DatabaseUnavailable(
                f"no connection free in the pool after {self.acquire_timeout_s:g}s ({in_use} of {size} in use)"
            ) from exc
        except PoolClosed as exc:
            raise DatabaseUnavailable("connection pool closed (being reset)") from exc
        try:
            result = fn(conn)
            conn.commit()
        except psycopg.Error as exc:
            if conn.broken:
                with self._lock:
                    self._leaked.append(conn)  # the modelled defect: lost connections are kept
                raise DatabaseUnavailable(f"connection lost: {_one_line(exc)}") from exc
            _rollback_and_return(pool, conn)
            raise
        except BaseException:
            _rollback_and_return(pool, conn)
            raise
        pool.putconn(conn)
        return result

    def in_use(self) -> int:
        with self._lock:
            pool = self._pool
        if pool is None:
            return 0
        stats = pool.get_stats()
        return int(stats.get("pool_size", 0)) - int(stats.get("pool_available", 0))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            pool, size = self._pool, self._size
            listeners, leaked = len(self._listeners), len(self._leaked)
        out: dict[str, Any] = {
            "pool_size": size,
            "generation": self._generation,
            "listeners": listeners,
            "lost_connections_kept": leaked,
        }
        if pool is not None:
            stats = pool.get_stats()
            out["connections"] = int(stats.get("pool_size", 0))
            out["available"] = int(stats.get("pool_available", 0))
        return out

    def close(self) -> None:
        with self._lock:
            self._close_locked()
            self._size = None

    def _close_locked(self) -> int:
        pool, self._pool = self._pool, None
        held = self._listeners + self._leaked
        self._listeners, self._leaked = [], []
        for conn in held:
            conn.close()
        if pool is None:
            return len(held)
        closed = int(pool.get_stats().get("pool_size", 0))
        pool.close(timeout=2.0)
        return closed


def _rollback_and_return(pool: ConnectionPool, conn: psycopg.Connection[Any]) -> None:
    if not conn.broken and not conn.closed:
        try:
            conn.rollback()
        except psycopg.Error as exc:
            log.warning("rollback failed before returning a connection: %s", exc)
    pool.putconn(conn)


def ensure_schema(dsn: str) -> None:
    """Create the app's tables and views (idempotent), as its migrations would."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(SCHEMA)


# ---- request statistics -----------------------------------------------------------------------------


@dataclass
class _Sample:
    at: float
    endpoint: str
    method: str
    status: int
    latency_ms: float


class RequestStats:
    """Requests of the last `window_s` seconds (count, errors, p50/p95/p99) and totals since start."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._samples: deque[_Sample] = deque(maxlen=200_000)
        self._totals: dict[tuple[str, str, int], int] = {}
        self._sum_s: dict[tuple[str, str], float] = {}

    def record(self, endpoint: str, method: str, status: int, latency_ms: float) -> None:
        with self._lock:
            self._samples.append(_Sample(self.clock(), endpoint, method, status, latency_ms))
            key = (endpoint, method, status)
            self._totals[key] = self._totals.get(key, 0) + 1
            self._sum_s[(endpoint, method)] = self._sum_s.get((endpoint, method), 0.0) + latency_ms / 1000

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()
            self._totals.clear()
            self._sum_s.clear()

    def window(self, window_s: float | None = None) -> dict[str, Any]:
        """`{"window_s", "requests", "errors", "error_rate_pct", "p50_ms", "p95_ms", "p99_ms",
        "routes": {"GET /api/journal": {...same...}}}` over the last `window_s` seconds (default: the
        configured window; samples are kept for `MAX_WINDOW_S`)."""
        span = self.window_s if window_s is None else window_s
        with self._lock:
            now = self.clock()
            while self._samples and self._samples[0].at < now - MAX_WINDOW_S:
                self._samples.popleft()
            samples = [s for s in self._samples if s.at >= now - span]
        by_endpoint: dict[str, list[_Sample]] = {}
        for s in samples:
            by_endpoint.setdefault(f"{s.method} {s.endpoint}", []).append(s)
        return {
            "window_s": span,
            **_summary(samples),
            "routes": {name: _summary(group) for name, group in sorted(by_endpoint.items())},
        }

    def totals(self) -> tuple[dict[tuple[str, str, int], int], dict[tuple[str, str], float]]:
        with self._lock:
            return dict(self._totals), dict(self._sum_s)


def _percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile (what most dashboards show for p95)."""
    if not sorted_ms:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_ms)))
    return round(sorted_ms[rank - 1], 1)


def _summary(samples: list[_Sample]) -> dict[str, Any]:
    latencies = sorted(s.latency_ms for s in samples)
    errors = sum(1 for s in samples if s.status >= 500)
    return {
        "requests": len(samples),
        "errors": errors,
        "error_rate_pct": round(100.0 * errors / len(samples), 2) if samples else 0.0,
        "p50_ms": _percentile(latencies, 0.50),
        "p95_ms": _percentile(latencies, 0.95),
        "p99_ms": _percentile(latencies, 0.99),
    }


# ---- memory and CPU ---------------------------------------------------------------------------------


@dataclass
class _PodLoad:
    leaked_bytes: float = 0.0
    cpu_m: float = 0.0
    saturated_steps: int = 0
    memory_band: int = 0


@dataclass
class Load:
    """What the app's pods consume, reported to metrics.k8s.io each step.

    - `memory_leak_bytes_per_step`: the leak, shared by the Ready pods (it follows the traffic, so
      more replicas slow it per pod: the guide's temporary relief). A pod reaching its memory limit
      logs the Node.js heap-exhaustion lines and is restarted with reason `OOMKilled`.
    - `cpu_demand_m`: extra CPU the app needs, shared by the Ready pods; each pod's usage climbs
      `cpu_climb_m` per step towards its share, capped at its limit. At the limit requests are
      throttled (`cpu_throttle_ms` added) and, after `liveness_fail_steps` steps, the liveness probe
      fails and the kubelet restarts the container (reason `Error`). Three replicas instead of two
      bring the default demand under the limit.
    """

    baseline_cpu_m: int = 40
    baseline_memory_bytes: int = 160 * 1024 * 1024
    memory_leak_bytes_per_step: float = 0.0
    cpu_demand_m: float = 0.0
    cpu_climb_m: float = 150.0
    cpu_throttle_ms: float = 400.0
    liveness_fail_steps: int = 20
    pods: dict[str, _PodLoad] = field(default_factory=dict)

    def clear(self) -> None:
        self.memory_leak_bytes_per_step = 0.0
        self.cpu_demand_m = 0.0
        self.pods.clear()


# ---- canned stack traces (what Sentry groups by) ----------------------------------------------------

_FRAMES: dict[str, list[Frame]] = {
    "broken": [
        ("node_modules/express/lib/router/layer.js", "handle", 95),
        ("src/middleware/session.ts", "loadSession", 31),
    ],
    "error_rate": [
        ("node_modules/express/lib/router/index.js", "next", 280),
        ("src/users/profile.ts", "getPreferences", 58),
    ],
    "database": [
        ("node_modules/pg-pool/index.js", "connect", 45),
        ("src/db/pool.ts", "withConnection", 27),
    ],
    "journal": [
        ("node_modules/pg/lib/client.js", "query", 526),
        ("src/journal/service.ts", "createEntry", 42),
    ],
    "hume": [("node_modules/undici/lib/fetch/index.js", "fetch", 112), ("src/music/hume.ts", "generate", 61)],
    "openai": [("node_modules/openai/core.js", "request", 301), ("src/coach/openai.ts", "reply", 38)],
    "spotify": [
        ("node_modules/undici/lib/fetch/index.js", "fetch", 112),
        ("src/music/spotify.ts", "recommend", 29),
    ],
    "oom": [("node:internal/v8", "heapLimit", 1), ("src/realtime/sessions.ts", "trackSession", 77)],
}


class AppError(Exception):
    """An error the app answers with a 5xx, logs with its stack and reports to Sentry."""

    def __init__(self, status: int, body: dict[str, Any], exc_type: str, message: str, frames: str) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.status = status
        self.body = body
        self.exc_type = exc_type
        self.message = message
        self.frames = frames


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:_MAX_LOG_BODY]


# ---- the service ------------------------------------------------------------------------------------


class EmotionsCare:
    """The service under care. See the module docstring; `start()` returns self, `stop()` frees all."""

    def __init__(
        self,
        cluster: Cluster,
        dsn: str,
        *,
        namespace: str = NAMESPACE,
        deployment: str = DEPLOYMENT,
        sentry: SentryStandIn | None = None,
        apis: Mapping[str, str] | None = None,
        api_keys: Mapping[str, str] | None = None,
        admin_token: str | None = None,
        db_acquire_timeout_s: float = 1.0,
        db_open_wait_s: float = 1.0,
        api_timeout_s: float = 3.0,
        sync_interval_s: float = 0.5,
        step_interval_s: float = 1.0,
        metrics_window_s: float = 60.0,
    ) -> None:
        self.cluster = cluster
        self.dsn = dsn
        self.namespace = namespace
        self.deployment = deployment
        self.sentry = sentry
        self.apis = dict(apis or {})
        self.api_keys = dict(api_keys or {})
        self.admin_token = admin_token
        self.api_timeout_s = api_timeout_s
        self.sync_interval_s = sync_interval_s
        self.step_interval_s = step_interval_s
        self.broken_images: set[str] = set()
        """Images whose pods run but whose code fails every API call (besides tags containing `broken`)."""
        self.error_rate_pct: float = 0.0
        """Share of feature requests that fail with a 500 (the `error-rate` fault); deterministic."""
        self.ingress_down = False
        """The load balancer in front of the pods is gone (`infra-down`): connections are refused."""
        self.load = Load()
        self.stats = RequestStats(window_s=metrics_window_s)
        self.db = Database(
            dsn, acquire_timeout_s=db_acquire_timeout_s, open_wait_s=db_open_wait_s, on_log=self.log
        )
        self.server = HttpServer(name=SERVICE)
        self.notifications: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        """Exceptions of the background loop (logged too): a test can assert there are none."""
        self._lock = threading.RLock()
        self._revision: Revision | None = None
        self._ready: list[str] = []
        self._pod_cycle = itertools.count()
        self._request_seq = itertools.count(1)
        self._sentry_pending = [0, 0]
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._http: httpx.Client | None = None
        self._next_step = 0.0
        self._routes()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> EmotionsCare:
        """Create its schema, listen, build its pool and follow the Deployment. Returns self."""
        ensure_schema(self.dsn)
        self._http = httpx.Client(timeout=self.api_timeout_s)
        self.server.start(host, port)
        self._stopping.clear()
        self._unsubscribe = self.cluster.subscribe(self._on_change)
        self.sync()
        self._thread = threading.Thread(target=self._loop, name=f"{SERVICE}-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following, close the listener, the pool and the HTTP client. Idempotent."""
        self._stopping.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.server.stop()
        self.db.close()
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def revision(self) -> Revision | None:
        with self._lock:
            return self._revision

    @property
    def ready_pods(self) -> list[str]:
        with self._lock:
            return list(self._ready)

    def reset_state(self) -> None:
        """Forget notifications, request statistics and load (between tests)."""
        with self._lock:
            self.notifications.clear()
            self.errors.clear()
            self.error_rate_pct = 0.0
            self.ingress_down = False
            self.broken_images.clear()
            self.load.clear()
            self._sentry_pending = [0, 0]
        self.stats.reset()
        self.server.reset_requests()

    # -- following the Deployment ------------------------------------------------------------------
    def _on_change(self, change: Change) -> None:
        if change.kind in ("Deployment", "ReplicaSet", "Pod") and change.namespace == self.namespace:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.sync_interval_s)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.sync()
                self.db.maintain()
                self._flush_sentry()
                if time.monotonic() >= self._next_step:
                    self._next_step = time.monotonic() + self.step_interval_s
                    self.step()
            except Exception as exc:  # keep following; the failure is logged and kept for tests
                log.exception("%s follower pass failed", SERVICE)
                with self._lock:
                    self.errors.append(exc)

    def sync(self) -> None:
        """Read the live Deployment: open or close the listener, build a pool for a new template."""
        if self._http is None:
            return  # not started (or stopped): nothing to follow with
        try:
            dep = self.cluster.get("Deployment", self.namespace, self.deployment)
            ready = [p["metadata"]["name"] for p in self.cluster.ready_pods(self.namespace, self.deployment)]
        except ApiError as exc:
            if exc.code != 404:
                raise
            dep, ready = None, []
        revision = (
            Revision.of(dep, self.cluster.is_bad_image, self.broken_images) if dep is not None else None
        )
        with self._lock:
            previous = self._revision
            self._revision = revision
            self._ready = ready
        serving = bool(ready) and not self.ingress_down
        if serving and not self.server.listening and not self.server.stopped:
            self.server.reopen_listener()
            self.log(f"INFO accepting connections again ({len(ready)} pod(s) ready)")
        elif not serving and self.server.listening:
            self.server.close_listener()
        if revision is not None and (previous is None or previous.template_key != revision.template_key):
            if previous is not None:
                self.log(f"INFO revision {revision.number} ({revision.image}) serving")
            self.db.build(revision.pool_size, reason=f"revision {revision.number} started")

    def reset_db_pool(self, reason: str = "admin reset") -> dict[str, Any]:
        """The guide's option 1: a new pool of the live revision's size."""
        revision = self.revision
        size = revision.pool_size if revision is not None else None
        return self.db.build(size, reason=reason)

    def step(self) -> None:
        """One resource step: memory and CPU of each Ready pod, OOM kills, liveness restarts."""
        with self._lock:
            ready = list(self._ready)
            load = self.load
        if not ready:
            return
        share = 2.0 / len(ready)  # the default two replicas carry the load the rates are given for
        limit_bytes = self._memory_limit_bytes()
        limit_m = self._cpu_limit_m()
        for name in list(load.pods):
            if name not in ready:
                del load.pods[name]
        for name in ready:
            pod = load.pods.setdefault(name, _PodLoad(cpu_m=float(load.baseline_cpu_m)))
            pod.leaked_bytes += load.memory_leak_bytes_per_step * share
            target_m = load.baseline_cpu_m + load.cpu_demand_m * share / 2.0
            if pod.cpu_m < target_m:
                pod.cpu_m = min(target_m, pod.cpu_m + load.cpu_climb_m)
            else:
                pod.cpu_m = max(target_m, pod.cpu_m - load.cpu_climb_m)
            pod.cpu_m = min(pod.cpu_m, float(limit_m))
            memory = int(load.baseline_memory_bytes + pod.leaked_bytes)
            try:
                self._pod_step(name, pod, memory, limit_bytes, limit_m)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                load.pods.pop(name, None)  # the pod went away meanwhile

    def _pod_step(self, name: str, pod: _PodLoad, memory: int, limit_bytes: int, limit_m: int) -> None:
        ns = self.namespace
        mib = memory // (1024 * 1024)
        limit_mib = limit_bytes // (1024 * 1024)
        if memory >= limit_bytes:
            for line in (
                f"ERROR FATAL: OutOfMemory: heap {mib}MiB reached the container limit {limit_mib}MiB",
                "<--- Last few GCs --->",
                f"[1:0x55d1c4e0]  Mark-sweep {mib - 4}.1 ({mib}.6) -> {mib - 5}.9 ({mib}.9) MB, "
                "812.3 / 0.0 ms  (average mu = 0.112, current mu = 0.021) allocation failure",
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            ):
                self.cluster.append_pod_log(ns, name, line)
            self._capture(
                "FatalError", "JavaScript heap out of memory", "oom", level="fatal", tags={"pod": name}
            )
            self.cluster.restart_pod(ns, name, reason="OOMKilled")
            self.load.pods[name] = _PodLoad(cpu_m=float(self.load.baseline_cpu_m))
            self.cluster.set_pod_usage(
                ns, name, int(self.load.baseline_cpu_m), self.load.baseline_memory_bytes
            )
            return
        band = int(10 * memory / limit_bytes)
        if band >= 5 and band > pod.memory_band:  # every 10% from half the limit
            self.cluster.append_pod_log(
                ns,
                name,
                f"WARN memory usage high: heap {mib}MiB of {limit_mib}MiB ({100 * memory // limit_bytes}%)",
            )
        pod.memory_band = band
        if pod.cpu_m >= 0.95 * limit_m:
            pod.saturated_steps += 1
            self.cluster.append_pod_log(
                ns,
                name,
                f"WARN event loop blocked for {int(self.load.cpu_throttle_ms * 3)}ms (cpu {int(pod.cpu_m)}m)",
            )
            if pod.saturated_steps >= self.load.liveness_fail_steps:
                self.cluster.append_pod_log(
                    ns, name, "ERROR liveness probe timed out: GET /health (timeout 1s)"
                )
                self.cluster.restart_pod(ns, name, reason="Error")
                pod.saturated_steps = 0
        else:
            pod.saturated_steps = 0
        self.cluster.set_pod_usage(ns, name, int(pod.cpu_m), memory)

    def cpu_pressure(self) -> float:
        """0..1: how far the busiest Ready pod is from idle to its CPU limit (for throttling)."""
        with self._lock:
            pods = [self.load.pods.get(n) for n in self._ready]
        limit = self._cpu_limit_m()
        used = max((p.cpu_m for p in pods if p is not None), default=0.0)
        return max(0.0, min(1.0, (used - 0.8 * limit) / (0.2 * limit)))

    def _container(self) -> dict[str, Any]:
        dep = self.cluster.get("Deployment", self.namespace, self.deployment)
        return dict(dep["spec"]["template"]["spec"]["containers"][0])

    def _memory_limit_bytes(self) -> int:
        limits = (self._container().get("resources") or {}).get("limits") or {}
        return _quantity_bytes(str(limits.get("memory", "512Mi")))

    def _cpu_limit_m(self) -> int:
        limits = (self._container().get("resources") or {}).get("limits") or {}
        return _quantity_millicores(str(limits.get("cpu", "1")))

    # -- logging and reporting ---------------------------------------------------------------------
    def log(self, line: str, pod: str | None = None) -> None:
        """Write `line` into a Ready pod's log (`pod`, else the next one in turn); nothing if none."""
        target = pod or self._pick_pod()
        if target is None:
            return
        try:
            self.cluster.append_pod_log(self.namespace, target, line)
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _pick_pod(self) -> str | None:
        with self._lock:
            ready = list(self._ready)
        if not ready:
            return None
        return ready[next(self._pod_cycle) % len(ready)]

    def _capture(
        self,
        exc_type: str,
        message: str,
        frames: str,
        level: str = "error",
        tags: Mapping[str, str] | None = None,
    ) -> None:
        if self.sentry is None:
            return
        revision = self.revision
        all_tags = {"release": revision.tag if revision else "unknown", **dict(tags or {})}
        self.sentry.capture_exception(SERVICE, message, exc_type, _FRAMES[frames], level=level, tags=all_tags)

    def _flush_sentry(self) -> None:
        with self._lock:
            total, errors = self._sentry_pending
            self._sentry_pending = [0, 0]
        if self.sentry is not None and total:
            self.sentry.record_requests(total, errors, service=SERVICE)

    # -- HTTP --------------------------------------------------------------------------------------
    def _routes(self) -> None:
        r = self.server.route
        r("GET", "/health", self._health)
        r("GET", "/metrics", self._metrics)
        r("POST", "/admin/reset-db-pool", self._reset_pool_endpoint)
        r("GET", "/api/health", self._endpoint("/api/health", self._api_health, counted=False, faults=False))
        r("POST", "/api/notifications", self._endpoint("/api/notifications", self._notify, faults=False))
        r("GET", "/api/notifications", self._endpoint("/api/notifications", self._list_notifications))
        r(
            "POST",
            "/api/journal",
            self._endpoint("/api/journal", self._create_entry, flag="FEATURE_JOURNAL_ENABLED"),
        )
        r(
            "GET",
            "/api/journal",
            self._endpoint("/api/journal", self._list_entries, flag="FEATURE_JOURNAL_ENABLED"),
        )
        r(
            "POST",
            "/api/music/generate",
            self._endpoint(
                "/api/music/generate", self._generate_music, flag="FEATURE_MUSIC_GENERATION_ENABLED"
            ),
        )
        r("POST", "/api/coach", self._endpoint("/api/coach", self._coach, flag="FEATURE_AI_COACH_ENABLED"))
        r(
            "GET",
            "/api/music/playlists",
            self._endpoint("/api/music/playlists", self._playlists, flag="FEATURE_MUSIC_PLAYBACK_ENABLED"),
        )

    def _health(self, _request: Request) -> Response:
        # Guide, Service Completely Down, step 1: `curl /health` answers while the process is up.
        return Response.json({"status": "ok", "service": SERVICE, "pods_ready": len(self.ready_pods)})

    def _endpoint(
        self,
        path: str,
        handler: Callable[[Request, Revision], Response],
        *,
        flag: str | None = None,
        counted: bool = True,
        faults: bool = True,
    ) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            started = time.perf_counter()
            status = 500
            try:
                response = self._serve(request, handler, flag, faults)
                status = response.status
                return response
            except HttpError as exc:
                status = exc.status
                raise
            except AppError as exc:
                status = exc.status
                self._report(request, exc)
                return Response.json(exc.body, status=exc.status)
            finally:
                latency_ms = (time.perf_counter() - started) * 1000
                if counted:  # health probes stay out of the metrics, the logs and Sentry's traffic
                    self.stats.record(path, request.method, status, latency_ms)
                    with self._lock:
                        self._sentry_pending[0] += 1
                        self._sentry_pending[1] += 1 if status >= 500 else 0
                    self.log(f"INFO {request.method} {path} {status} {latency_ms:.0f}ms")

        return handle

    def _serve(
        self,
        request: Request,
        handler: Callable[[Request, Revision], Response],
        flag: str | None,
        faults: bool,
    ) -> Response:
        revision = self.revision
        if revision is None:
            raise AppError(503, {"error": "no_deployment"}, "Error", "no deployment", "broken")
        if revision.crashing:
            raise AppError(
                500,
                {
                    "status": "error",
                    "error": "revision_crashing",
                    "reason": f"revision {revision.number} ({revision.image}) is crash-looping",
                },
                "Error",
                "application failed to start: exiting with code 1",
                "broken",
            )
        if revision.broken:
            raise AppError(
                500,
                {
                    "status": "error",
                    "error": "internal_error",
                    "reason": f"revision {revision.number} ({revision.image}): TypeError: "
                    "Cannot read properties of undefined (reading 'userId')",
                },
                "TypeError",
                "Cannot read properties of undefined (reading 'userId')",
                "broken",
            )
        pressure = self.cpu_pressure()
        if pressure > 0:
            self._stopping.wait(self.load.cpu_throttle_ms * pressure / 1000)
        if flag is not None and not revision.flag(flag):
            feature = FEATURE_FLAGS[flag][0]
            raise HttpError(
                503,
                {"error": "feature_disabled", "feature": feature, "detail": f"{flag}=false (maintenance)"},
            )
        if faults and self._fails_now():
            raise AppError(
                500,
                {
                    "error": "internal_error",
                    "detail": "TypeError: Cannot read properties of null (reading 'preferences')",
                },
                "TypeError",
                "Cannot read properties of null (reading 'preferences')",
                "error_rate",
            )
        return handler(request, revision)

    def _fails_now(self) -> bool:
        """Exactly `error_rate_pct` % of requests fail, spread evenly (request n fails when the running
        share crosses an integer), so a test sees the rate without randomness."""
        pct = self.error_rate_pct
        if pct <= 0:
            return False
        n = next(self._request_seq)
        return math.floor(n * pct / 100) > math.floor((n - 1) * pct / 100)

    def _report(self, request: Request, exc: AppError) -> None:
        pod = self._pick_pod()
        self.log(f"ERROR {request.method} {request.path} {exc.status} - {exc.exc_type}: {exc.message}", pod)
        for filename, function, line in (f for f in _FRAMES[exc.frames][::-1] if isinstance(f, tuple)):
            self.log(f"    at {function} (/app/{filename}:{line}:11)", pod)
        self._capture(exc.exc_type, exc.message, exc.frames, tags={"url": request.path})

    def _db(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        try:
            return self.db.run(fn)
        except DatabaseUnavailable as exc:
            raise AppError(
                500,
                {
                    "status": "error",
                    "error": "database_unavailable",
                    "reason": f"database unreachable: {exc}",
                },
                "DatabaseError",
                str(exc),
                "database",
            ) from exc

    # /api/health: application health (guide: "If 500 -> app issue")
    def _api_health(self, _request: Request, revision: Revision) -> Response:
        if revision.pool_size_error:
            raise AppError(
                500,
                {"status": "error", "error": "bad_config", "reason": revision.pool_size_error},
                "ConfigError",
                revision.pool_size_error,
                "database",
            )
        started = time.perf_counter()
        self._db(lambda conn: conn.execute("SELECT 1").fetchone())
        db_ms = (time.perf_counter() - started) * 1000
        return Response.json(
            {
                "status": "ok",
                "service": SERVICE,
                "revision": revision.number,
                "image": revision.image,
                "version": revision.tag,
                "pods_ready": len(self.ready_pods),
                "database": {"ok": True, "latency_ms": round(db_ms, 1), **self.db.stats()},
                "features": revision.features,
            }
        )

    def _reset_pool_endpoint(self, request: Request) -> Response:
        if self.admin_token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not given:
                raise HttpError(
                    401, {"error": "unauthorized", "detail": "Authorization: Bearer <admin token> required"}
                )
            if not hmac.compare_digest(given.strip().encode(), self.admin_token.encode()):
                raise HttpError(403, {"error": "forbidden", "detail": "invalid admin token"})
        result = self.reset_db_pool("POST /admin/reset-db-pool")
        try:
            self.db.run(lambda conn: conn.execute("SELECT 1").fetchone())
            database = "ok"
        except DatabaseUnavailable as exc:
            database = f"unreachable: {exc}"
        return Response.json({"status": "reset", **result, "database": database})

    def _notify(self, request: Request, _revision: Revision) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, {"error": "invalid_body", "detail": "a JSON object is required"})
        kind = body.get("type")
        if not isinstance(kind, str) or not kind.strip() or len(kind) > 64:
            raise HttpError(400, {"error": "invalid_field", "field": "type", "detail": "a non-empty string"})
        feature = body.get("feature")
        if feature is not None and (not isinstance(feature, str) or len(feature) > 64):
            raise HttpError(400, {"error": "invalid_field", "field": "feature", "detail": "a string"})
        message = body.get("message")
        if message is not None and (not isinstance(message, str) or len(message) > 2000):
            raise HttpError(400, {"error": "invalid_field", "field": "message", "detail": "a string"})
        with self._lock:
            record = {
                "id": len(self.notifications) + 1,
                "type": kind,
                "feature": feature,
                "message": message,
                "created_at": datetime.now(UTC).isoformat(),
            }
            self.notifications.append(record)
        return Response.json(record, status=201)

    def _list_notifications(self, _request: Request, _revision: Revision) -> Response:
        with self._lock:
            return Response.json({"notifications": list(self.notifications)})

    def _create_entry(self, request: Request, _revision: Revision) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, {"error": "invalid_body", "detail": "a JSON object is required"})
        text = body.get("body")
        if not isinstance(text, str) or not text.strip() or len(text) > 10_000:
            raise HttpError(400, {"error": "invalid_field", "field": "body", "detail": "a non-empty string"})
        mood = body.get("mood", "neutral")
        user = body.get("user_id", "anonymous")
        if not isinstance(mood, str) or not isinstance(user, str):
            raise HttpError(400, {"error": "invalid_field", "field": "mood", "detail": "strings"})

        def insert(conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
            return conn.execute(
                "INSERT INTO journal_entries (user_id, mood, body) VALUES (%s, %s, %s) RETURNING id, created_at",
                (user, mood, text),
            ).fetchone()

        try:
            row = self._db(insert)
        except psycopg.Error as exc:
            # Guide, P2 › Feature Broken: "Check for constraint violations"; the error says which.
            raise AppError(
                500,
                {"error": "journal_write_failed", "detail": _one_line(exc)},
                type(exc).__name__,
                _one_line(exc),
                "journal",
            ) from exc
        if row is None:
            raise AppError(
                500,
                {"error": "journal_write_failed", "detail": "no row returned"},
                "Error",
                "INSERT returned no row",
                "journal",
            )
        return Response.json({"id": row[0], "created_at": row[1].isoformat(), "mood": mood}, status=201)

    def _list_entries(self, request: Request, _revision: Revision) -> Response:
        try:
            limit = int(request.arg("limit", "20") or "20")
        except ValueError as exc:
            raise HttpError(
                400, {"error": "invalid_field", "field": "limit", "detail": "an integer"}
            ) from exc
        if not 1 <= limit <= 200:
            raise HttpError(400, {"error": "invalid_field", "field": "limit", "detail": "1..200"})

        def select(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT id, user_id, mood, body, created_at FROM journal_feed ORDER BY created_at DESC LIMIT %s",
                (limit,),
            ).fetchall()

        try:
            rows = self._db(select)
        except psycopg.Error as exc:
            raise AppError(
                500,
                {"error": "journal_read_failed", "detail": _one_line(exc)},
                type(exc).__name__,
                _one_line(exc),
                "journal",
            ) from exc
        entries = [
            {"id": r[0], "user_id": r[1], "mood": r[2], "body": r[3], "created_at": r[4].isoformat()}
            for r in rows
        ]
        return Response.json({"entries": entries})

    def _call_api(self, api: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        base = self.apis.get(api)
        if base is None or self._http is None:
            raise AppError(
                502,
                {"error": "upstream_unavailable", "api": api, "detail": "not configured"},
                "UpstreamError",
                f"{api} not configured",
                api,
            )
        headers = dict(kwargs.pop("headers", {}))
        key = self.api_keys.get(api)
        if key is not None:
            headers.update({"X-Hume-Api-Key": key} if api == "hume" else {"Authorization": f"Bearer {key}"})
        try:
            response = self._http.request(method, base + path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise AppError(
                502,
                {
                    "error": "upstream_unavailable",
                    "api": api,
                    "detail": f"{type(exc).__name__}: {_one_line(exc)}",
                },
                "UpstreamError",
                f"{api} request failed: {type(exc).__name__}",
                api,
            ) from exc
        if response.status_code >= 500:
            raise AppError(
                502,
                {"error": "upstream_unavailable", "api": api, "detail": f"HTTP {response.status_code}"},
                "UpstreamError",
                f"{api} answered {response.status_code}",
                api,
            )
        if response.status_code >= 400:
            raise AppError(
                502,
                {"error": "upstream_rejected", "api": api, "detail": f"HTTP {response.status_code}"},
                "UpstreamError",
                f"{api} rejected the request ({response.status_code})",
                api,
            )
        return response

    def _generate_music(self, request: Request, _revision: Revision) -> Response:
        body = request.json()
        prompt = body.get("prompt", "calm evening") if isinstance(body, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise HttpError(
                400, {"error": "invalid_field", "field": "prompt", "detail": "a non-empty string"}
            )
        job = self._call_api(
            "hume", "POST", "/v0/batch/jobs", json={"text": [prompt], "models": {"language": {}}}
        )
        return Response.json({"status": "generating", "hume_job_id": job.json().get("job_id")}, status=202)

    def _coach(self, request: Request, _revision: Revision) -> Response:
        body = request.json()
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, str) or not message.strip():
            raise HttpError(
                400, {"error": "invalid_field", "field": "message", "detail": "a non-empty string"}
            )
        reply = self._call_api(
            "openai",
            "POST",
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": message}]},
        ).json()
        text = ((reply.get("choices") or [{}])[0].get("message") or {}).get("content", "")
        return Response.json({"reply": text})

    def _playlists(self, request: Request, _revision: Revision) -> Response:
        mood = request.arg("mood", "calm") or "calm"
        tracks = self._call_api(
            "spotify", "GET", "/v1/recommendations", params={"seed_genres": mood, "limit": 5}
        ).json()
        return Response.json({"mood": mood, "tracks": [t.get("name") for t in tracks.get("tracks", [])]})

    def _metrics(self, request: Request) -> Response:
        """JSON (`?window_s=N`, default the configured window); Prometheus text for a scraper
        (`Accept: text/plain` or OpenMetrics) or `?format=prometheus`."""
        raw = request.arg("window_s")
        try:
            window_s = float(raw) if raw is not None else None
        except ValueError as exc:
            raise HttpError(
                400, {"error": "invalid_field", "field": "window_s", "detail": "seconds"}
            ) from exc
        if window_s is not None and not 0 < window_s <= MAX_WINDOW_S:
            raise HttpError(
                400,
                {
                    "error": "invalid_field",
                    "field": "window_s",
                    "detail": f"0 < window_s <= {MAX_WINDOW_S:g}",
                },
            )
        window = self.stats.window(window_s)
        accept = request.headers.get("accept", "")
        fmt = request.arg("format")
        if fmt == "prometheus" or (fmt is None and ("text/plain" in accept or "openmetrics" in accept)):
            return Response.text(self._prometheus(window))
        return Response.json(window)

    def _prometheus(self, window: dict[str, Any]) -> str:
        totals, sums = self.stats.totals()
        lines = [
            "# HELP emotionscare_http_requests_total Requests served, by endpoint, method and status.",
            "# TYPE emotionscare_http_requests_total counter",
        ]
        for (endpoint, method, status), count in sorted(totals.items()):
            lines.append(
                f'emotionscare_http_requests_total{{endpoint="{endpoint}",method="{method}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP emotionscare_http_request_duration_seconds Latency over the last window, by endpoint.",
            "# TYPE emotionscare_http_request_duration_seconds summary",
        ]
        for name, summary in window["routes"].items():
            method, endpoint = name.split(" ", 1)
            labels = f'endpoint="{endpoint}",method="{method}"'
            for q, key in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
                lines.append(
                    f'emotionscare_http_request_duration_seconds{{{labels},quantile="{q}"}} {summary[key] / 1000:.4f}'
                )
            lines.append(
                f"emotionscare_http_request_duration_seconds_count{{{labels}}} {summary['requests']}"
            )
            lines.append(
                f"emotionscare_http_request_duration_seconds_sum{{{labels}}} {sums.get((endpoint, method), 0.0):.4f}"
            )
        w = int(window["window_s"])
        lines += [
            "# HELP emotionscare_http_error_rate_percent Share of requests answered 5xx over the window.",
            "# TYPE emotionscare_http_error_rate_percent gauge",
            f'emotionscare_http_error_rate_percent{{window="{w}s"}} {window["error_rate_pct"]}',
            "# HELP emotionscare_http_p95_latency_seconds 95th percentile latency over the window.",
            "# TYPE emotionscare_http_p95_latency_seconds gauge",
            f'emotionscare_http_p95_latency_seconds{{window="{w}s"}} {window["p95_ms"] / 1000:.4f}',
        ]
        return "\n".join(lines) + "\n"


def _quantity_bytes(raw: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}
    for suffix, factor in units.items():
        if raw.endswith(suffix):
            return int(float(raw[: -len(suffix)]) * factor)
    return int(float(raw))


def _quantity_millicores(raw: str) -> int:
    if raw.endswith("m"):
        return int(raw[:-1])
    return int(float(raw) * 1000)
