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

The package, by what each part does: `revision` (what the template says), `database` (the pool and its
modelled defect), `stats` (request statistics and /metrics), `load` (memory and CPU of the pods),
`features` (the endpoints behind the feature flags), `errors` (how the app fails, the stacks Sentry
groups by), `app` (`EmotionsCare`: following the Deployment, logging, reporting, routing).
"""

from sandbox.service.app import EmotionsCare
from sandbox.service.database import Database, DatabaseUnavailable
from sandbox.service.load import Load
from sandbox.service.revision import DEPLOYMENT, FEATURE_FLAGS, NAMESPACE, SERVICE, Revision
from sandbox.service.stats import RequestStats

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
