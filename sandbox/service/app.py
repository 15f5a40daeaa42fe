"""The service itself: `EmotionsCare` follows the live Deployment (listening or not, which revision,
a new pool per template), writes its logs into its pods' logs, reports to Sentry, and routes HTTP.

What each part does lives beside it: `revision` (what the template says), `database` (the pool and its
defect), `features` (the endpoints behind the feature flags), `stats` (/metrics), `load` (memory, CPU).
"""

from __future__ import annotations

import hmac
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.httpserver import HttpError, HttpServer, Request, Response
from sandbox.k8s import ApiError, Change, Cluster
from sandbox.sentry import SentryStandIn
from sandbox.service.database import Database, DatabaseUnavailable, ensure_schema, query
from sandbox.service.errors import FRAMES, AppError, error_rate_failure, revision_failure
from sandbox.service.features import Features
from sandbox.service.load import Load, PodResources
from sandbox.service.revision import DEPLOYMENT, FEATURE_FLAGS, NAMESPACE, SERVICE, Revision
from sandbox.service.stats import RequestStats, metrics_response

__all__ = ["EmotionsCare"]

log = logging.getLogger(__name__)


class EmotionsCare:
    """The service under care. See the module docstring; `start()` returns self, `stop()` frees all."""

    def __init__(
        self,
        cluster: Cluster,
        dsn: str | None,
        *,
        name: str = SERVICE,
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
        """None: a service without a database (no pool; `/api/health` checks no database)."""
        self.name = name
        self.namespace = namespace
        self.deployment = deployment
        self.sentry = sentry
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
        self.resources = PodResources(cluster, namespace, deployment, capture=self._capture)
        self.stats = RequestStats(window_s=metrics_window_s)
        self.db = Database(
            dsn or "", acquire_timeout_s=db_acquire_timeout_s, open_wait_s=db_open_wait_s, on_log=self.log
        )
        self.features = Features(self.db, apis, api_keys, api_timeout_s)
        self.server = HttpServer(name=name)
        self.errors: list[BaseException] = []
        """Exceptions of the background loop (logged too): a test can assert there are none."""
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._step_lock = threading.Lock()
        self._revision: Revision | None = None
        self._ready: list[str] = []
        self._pod_cycle = itertools.count()
        self._request_seq = itertools.count(1)
        self._sentry_pending = [0, 0]
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._next_step = 0.0
        self._routes()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> EmotionsCare:
        """Create its schema, listen, build its pool and follow the Deployment. Returns self."""
        if self.dsn is not None:
            ensure_schema(self.dsn)
        self.features.open()
        self.server.start(host, port)
        self._stopping.clear()
        self._unsubscribe = self.cluster.subscribe(self._on_change)
        self.sync()
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-follower", daemon=True)
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
        self.features.close()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def load(self) -> Load:
        """What the pods consume (the memory-leak and cpu faults set it)."""
        return self.resources.load

    @property
    def apis(self) -> dict[str, str]:
        """External API name → base URL (the sandbox's stand-ins, set before `start`)."""
        return self.features.apis

    @apis.setter
    def apis(self, value: Mapping[str, str]) -> None:
        self.features.apis = dict(value)

    @property
    def notifications(self) -> list[dict[str, Any]]:
        return self.features.notifications

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
            self.features.reset()
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
                log.exception("%s follower pass failed", self.name)
                with self._lock:
                    self.errors.append(exc)

    def sync(self) -> None:
        """Read the live Deployment: open or close the listener, build a pool for a new template.

        One sync at a time: the follow loop and a fault's undo (or a test) may call it together, and two
        at once could both reopen the listener."""
        with self._sync_lock:
            self._sync()

    def _sync(self) -> None:
        if not self.features.opened:
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
            if self.dsn is not None:
                self.db.build(revision.pool_size, reason=f"revision {revision.number} started")

    def reset_db_pool(self, reason: str = "admin reset") -> dict[str, Any]:
        """The guide's option 1: a new pool of the live revision's size."""
        if self.dsn is None:
            return {"pool_size": None, "closed_connections": 0, "connections": 0, "database": "none"}
        revision = self.revision
        size = revision.pool_size if revision is not None else None
        return self.db.build(size, reason=reason)

    def step(self) -> None:
        """One resource step of the Ready pods (memory, CPU, OOM kills, liveness restarts).

        One at a time: the follow loop and `World.step` may step together, and two steps at once both
        saw a pod at its limit and killed it twice, the second time with an empty log (its `--previous`
        log then held no OutOfMemory line)."""
        with self._step_lock:
            self.resources.step(self.ready_pods)

    def cpu_pressure(self) -> float:
        """0..1: how far the busiest Ready pod is from idle to its CPU limit (for throttling)."""
        return self.resources.cpu_pressure(self.ready_pods)

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
        self.sentry.capture_exception(
            self.name, message, exc_type, FRAMES[frames], level=level, tags=all_tags
        )

    def _flush_sentry(self) -> None:
        with self._lock:
            total, errors = self._sentry_pending
            self._sentry_pending = [0, 0]
        if self.sentry is not None and total:
            self.sentry.record_requests(total, errors, service=self.name)

    # -- HTTP --------------------------------------------------------------------------------------
    def _routes(self) -> None:
        r = self.server.route
        r("GET", "/health", self._health)
        r("GET", "/metrics", lambda request: metrics_response(self.stats, request))
        r("POST", "/admin/reset-db-pool", self._reset_pool_endpoint)
        r("GET", "/api/health", self._endpoint("/api/health", self._api_health, counted=False, faults=False))
        for method, path, handler, flag, faults in self.features.routes():
            r(method, path, self._endpoint(path, handler, flag=flag, faults=faults))

    def _health(self, _request: Request) -> Response:
        # Guide, Service Completely Down, step 1: `curl /health` answers while the process is up.
        return Response.json({"status": "ok", "service": self.name, "pods_ready": len(self.ready_pods)})

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
        failure = revision_failure(revision)
        if failure is not None:
            raise failure
        pressure = self.resources.cpu_pressure(self.ready_pods)
        if pressure > 0:
            self._stopping.wait(self.load.cpu_throttle_ms * pressure / 1000)
        if flag is not None and not revision.flag(flag):
            feature = FEATURE_FLAGS[flag][0]
            raise HttpError(
                503,
                {"error": "feature_disabled", "feature": feature, "detail": f"{flag}=false (maintenance)"},
            )
        if faults and self._fails_now():
            raise error_rate_failure()
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
        for filename, function, line in (f for f in FRAMES[exc.frames][::-1] if isinstance(f, tuple)):
            self.log(f"    at {function} (/app/{filename}:{line}:11)", pod)
        self._capture(exc.exc_type, exc.message, exc.frames, tags={"url": request.path})

    def _api_health(self, _request: Request, revision: Revision) -> Response:
        if revision.pool_size_error:
            raise AppError(
                500,
                {"status": "error", "error": "bad_config", "reason": revision.pool_size_error},
                "ConfigError",
                revision.pool_size_error,
                "database",
            )
        database: dict[str, Any] | None = None
        if self.dsn is not None:
            started = time.perf_counter()
            query(self.db, lambda conn: conn.execute("SELECT 1").fetchone())
            db_ms = (time.perf_counter() - started) * 1000
            database = {"ok": True, "latency_ms": round(db_ms, 1), **self.db.stats()}
        return Response.json(
            {
                "status": "ok",
                "service": self.name,
                "revision": revision.number,
                "image": revision.image,
                "version": revision.tag,
                "pods_ready": len(self.ready_pods),
                "database": database,
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
        if self.dsn is None:
            return Response.json({"status": "reset", **result})
        try:
            self.db.run(lambda conn: conn.execute("SELECT 1").fetchone())
            database = "ok"
        except DatabaseUnavailable as exc:
            database = f"unreachable: {exc}"
        return Response.json({"status": "reset", **result, "database": database})
