"""How the dispatcher starts a `respond` run: one Prefect client call per incident, keyed for exactly once.

Usage::

    starter = PrefectStarter(api_url)
    run_id = await starter.start("respond/respond", respond_parameters(incident),
                                 idempotency_key("respond/respond", incident.id))
    await starter.aclose()

`PrefectStarter.start` is what `run_deployment(name, parameters, timeout=0, idempotency_key=key)` does,
with the deployment's id read once per name (one round trip per creation instead of two). Prefect's
idempotency keys are scoped per flow, so the key carries the deployment name: a retry, a replay or a
second replica asking for the same incident gets the same flow run back. Split from intake/dispatch.py
(the loop that calls it) so each stays one thing under ~400 lines.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from runbook.models import Incident

__all__ = ["FlowStarter", "PrefectStarter", "idempotency_key", "prefect_api_url", "respond_parameters"]

log = logging.getLogger("intake.dispatch")


def idempotency_key(deployment: str, incident_id: str) -> str:
    """`"respond/respond:<incident id>"`: per deployment, because Prefect scopes keys per flow."""
    return f"{deployment}:{incident_id}"


class FlowStarter(Protocol):
    """Starts (or finds, by idempotency key) the flow run of one deployment; returns the run id."""

    async def start(self, deployment: str, parameters: dict[str, Any], key: str) -> str: ...

    async def aclose(self) -> None: ...


class PrefectStarter:
    """Creates runs as `run_deployment(..., timeout=0, idempotency_key=key)` does, on one Prefect API,
    one client reused."""

    def __init__(self, api_url: str, *, request_timeout_s: float = 10.0) -> None:
        self.api_url = api_url
        self.request_timeout_s = request_timeout_s
        self._client: Any = None
        self._deployment_ids: dict[str, Any] = {}

    async def _get_client(self) -> Any:
        if self._client is None:
            from prefect.client.orchestration import PrefectClient

            client = PrefectClient(self.api_url, httpx_settings={"timeout": self.request_timeout_s})
            await client.__aenter__()
            self._client = client
        return self._client

    async def start(self, deployment: str, parameters: dict[str, Any], key: str) -> str:
        """What `run_deployment(name, parameters, timeout=0, idempotency_key=key)` does, minus its
        read of the deployment on every call: the id is read once per name and kept (one round trip
        per creation instead of two). Any failure forgets it, so a redeployed (new id) deployment is
        found again on the retry."""
        from prefect.states import Scheduled

        client = await self._get_client()
        try:
            deployment_id = self._deployment_ids.get(deployment)
            if deployment_id is None:
                deployment_id = (await client.read_deployment_by_name(deployment)).id
                self._deployment_ids[deployment] = deployment_id
            flow_run = await client.create_flow_run_from_deployment(
                deployment_id, parameters=parameters, state=Scheduled(), tags=["intake"], idempotency_key=key
            )
        except BaseException:
            self._deployment_ids.pop(deployment, None)
            raise
        return str(flow_run.id)

    async def warm(self, deployment: str) -> None:
        """Open the client and read the deployment once, so the first alert does not pay for it
        (CSRF and version round trips, ~1 s after a start: docs/latency.md). Failures are logged only:
        the first dispatch retries as usual."""
        try:
            client = await self._get_client()
            self._deployment_ids[deployment] = (await client.read_deployment_by_name(deployment)).id
        except Exception as exc:  # the server may not be up yet, or the deployment not registered
            log.info("dispatcher warm-up: %s: %s (the first dispatch will retry)", type(exc).__name__, exc)

    async def healthy(self) -> bool:
        """True if the API answers its health endpoint (`GET /api/health`)."""
        client = await self._get_client()
        return await client.api_healthcheck() is None

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.__aexit__(None, None, None)


def respond_parameters(incident: Incident) -> dict[str, Any]:
    """The `respond` flow's parameters: the incident's id (the run reads the rest from the store). Only
    the id: the deployment's form refuses a service outside the catalogue, and an alert for one still
    gets its response."""
    return {"incident_id": incident.id}


def prefect_api_url() -> str | None:
    """The Prefect API URL from Prefect's settings, or None when none is set."""
    from prefect.settings import PREFECT_API_URL

    value = PREFECT_API_URL.value()
    return str(value) if value else None
