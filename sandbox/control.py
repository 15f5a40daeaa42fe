"""The control API of a running world, so `python -m sandbox fault NAME` from another shell can act on it.

Usage::

    control = ControlServer(world).start()             # 127.0.0.1, a free port (or a given one)
    httpx.post(control.url + "/faults/bad-deploy", json={"ago_min": 20})
    httpx.post(control.url + "/faults/api-down", json={"arg": "hume", "mode": "5xx"})
    httpx.post(control.url + "/faults", json={"name": "error-rate", "arg": "8"})   # the same, by body
    httpx.post(control.url + "/faults/bad-deploy", json={"service": "payments"})  # another service
    httpx.post(control.url + "/clear?service=payments")  # one service's faults (also DELETE ?service=)
    httpx.delete(control.url + "/faults/db-down")      # lift one fault
    httpx.post(control.url + "/clear")                 # every fault; also POST /faults/clear
    httpx.get(control.url + "/status")                 # live image, revision, faults, pool, metrics
    httpx.get(control.url + "/faults")                 # {"faults": [...], "active": [...]}
    control_url()                                      # the running sandbox's URL, or None

Answers: 200 with `{"fault", "message", "status"}`; 404 for an unknown fault (with the valid names),
422 for a bad argument or a service that is not in the world or lacks what the fault needs (naming
it), 409 when the fault cannot act now (e.g. the database is down),
400 for a body that is not a JSON object.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from sandbox.faults import FAULTS, FaultArgError, FaultConflict, UnknownFault
from sandbox.httpserver import HttpError, HttpServer, Request, Response

if TYPE_CHECKING:
    from sandbox.world import World

__all__ = ["CONTROL_VAR", "ENV_FILE", "ControlServer", "control_url", "read_env_file"]

ENV_FILE = Path("var/sandbox.env")
CONTROL_VAR = "SANDBOX_CONTROL_URL"


class ControlServer:
    """Fault injection and status of one `World` over HTTP (loopback only)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.server = HttpServer(name="sandbox-control")
        r = self.server.route
        r("GET", "/status", lambda _r: Response.json(self.world.status()))
        r("GET", "/faults", self._list)
        r("POST", "/faults/clear", self._clear_all)
        r("POST", "/faults", self._inject_by_body)
        r("POST", "/faults/{name}", self._inject)
        r("DELETE", "/faults/{name}", self._clear_one)
        r("POST", "/clear", self._clear_all)
        r("POST", "/clear/{name}", self._clear_one)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> ControlServer:
        self.server.start(host, port)
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def _list(self, _request: Request) -> Response:
        return Response.json(
            {"faults": [f.describe() for f in FAULTS.values()], "active": self.world.active_faults()}
        )

    def _inject_by_body(self, request: Request) -> Response:
        body = _object(request)
        name = body.pop("name", None)
        if not isinstance(name, str) or not name:
            raise HttpError(422, {"error": "name: required (a fault name)", "valid": list(FAULTS)})
        return self._do(name, body)

    def _inject(self, request: Request) -> Response:
        return self._do(request.params["name"], _object(request))

    def _do(self, name: str, body: dict[str, Any]) -> Response:
        arg = body.pop("arg", None)
        service = body.pop("service", None)
        if service is not None and not isinstance(service, str):
            raise HttpError(422, {"error": "service: must be a service name (a string)"})
        with _errors():
            message = self.world.inject(name, arg, service=service, **body)
        return Response.json({"fault": name, "message": message, "status": self.world.status()})

    def _clear_one(self, request: Request) -> Response:
        with _errors():
            message = self.world.clear(request.params["name"], service=_service(request))
        return Response.json(
            {"fault": request.params["name"], "message": message, "status": self.world.status()}
        )

    def _clear_all(self, request: Request) -> Response:
        with _errors():
            message = self.world.clear(service=_service(request))
        return Response.json({"message": message, "status": self.world.status()})


@contextmanager
def _errors() -> Iterator[None]:
    """Fault errors as HTTP answers: 404 unknown, 422 bad argument, 409 conflict."""
    try:
        yield
    except UnknownFault as exc:
        raise HttpError(404, {"error": str(exc), "valid": list(FAULTS)}) from exc
    except FaultArgError as exc:
        raise HttpError(422, {"error": str(exc)}) from exc
    except FaultConflict as exc:
        raise HttpError(409, {"error": str(exc)}) from exc


def _service(request: Request) -> str | None:
    """The `service` query parameter (one service's faults), or None (the first / every service)."""
    values = request.query.get("service") or []
    return values[-1] if values else None


def _object(request: Request) -> dict[str, Any]:
    body = request.json() if request.raw_body else {}
    if not isinstance(body, dict):
        raise HttpError(400, {"error": "the body must be a JSON object of fault arguments"})
    return body


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """The `export KEY='value'` lines `python -m sandbox up` wrote, as a dict ({} when absent)."""
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        parts = shlex.split(value)
        out[key.strip()] = parts[0] if parts else ""
    return out


def control_url(env_file: Path = ENV_FILE, timeout_s: float = 1.0) -> str | None:
    """The control URL of the running sandbox (`$SANDBOX_CONTROL_URL`, else `var/sandbox.env`),
    or None when none is configured or it does not answer."""
    url = os.environ.get(CONTROL_VAR) or read_env_file(env_file).get(CONTROL_VAR)
    if not url:
        return None
    try:
        httpx.get(url.rstrip("/") + "/faults", timeout=timeout_s).raise_for_status()
    except httpx.HTTPError:
        return None
    return url.rstrip("/")
