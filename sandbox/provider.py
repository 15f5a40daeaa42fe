"""The hosted database's management API (Supabase's shape), so the guide's "Option 3: restart the
database" has an API to call.

Usage::

    provider = DatabaseProvider(restart=postgres_restart, running=postgres_running).start()
    httpx.post(f"{provider.url}/v1/projects/{PROVIDER_PROJECT}/restart",
               headers={"Authorization": f"Bearer {PROVIDER_TOKEN}"})
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.httpserver import HttpError, Request, Response, StandIn

__all__ = ["PROVIDER_PROJECT", "PROVIDER_TOKEN", "DatabaseProvider"]

PROVIDER_TOKEN = "sbp_sandbox_management_token"
PROVIDER_PROJECT = "emotionscare-sandbox"


class DatabaseProvider(StandIn):
    """The hosted database's management API (Supabase's shape): restart the database, read its health.

    `POST /v1/projects/{ref}/restart` (Bearer token) restarts PostgreSQL, or starts it when it is
    down; `GET /v1/projects/{ref}/health` says whether it runs. 401 without the token, 404 for
    another project, as the real API answers.
    """

    name = "database-provider"

    def __init__(self, restart: Callable[[], str], running: Callable[[], bool]) -> None:
        super().__init__()
        self._restart = restart
        self._running = running
        self.server.route("POST", "/v1/projects/{ref}/restart", self._restart_endpoint)
        self.server.route("GET", "/v1/projects/{ref}/health", self._health)

    def _check(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != PROVIDER_TOKEN:
            raise HttpError(401, {"message": "Unauthorized"})
        if request.params["ref"] != PROVIDER_PROJECT:
            raise HttpError(404, {"message": f"Project {request.params['ref']} not found"})

    def _restart_endpoint(self, request: Request) -> Response:
        self._check(request)
        return Response.json({"message": self._restart()})

    def _health(self, request: Request) -> Response:
        self._check(request)
        status = "ACTIVE_HEALTHY" if self._running() else "UNHEALTHY"
        return Response.json([{"name": "db", "healthy": self._running(), "status": status}])
