"""Where a drill injects its fault: a small interface, the sandbox's implementations, and the lookup.

Usage::

    from tasks.drill_targets import open_target, register_target, target_environment

    env = target_environment("sandbox")        # "sandbox": how the target is marked (it is not contacted)
    target = open_target("sandbox")            # a FaultTarget (nothing sent yet)
    target.inject("api-down", {"api": "hume"})     # the sandbox fault (sandbox/faults.py)
    target.active()                            # ["api-down api=hume"]
    target.clear()                             # every fault removed; the world healthy again

    unregister = register_target(WorldTarget(world))   # an in-process sandbox World (tests, the demo)

The interface (`FaultTarget`) is three calls; a staging environment implements it (or serves the same
HTTP control API as the sandbox) and is registered or reached through its control URL. Marking is part
of the target (`environment`), read without contacting it, so the production rule
(runbook/drills.py `check_target`) is decided before a single request goes out.

Lookup order of `open_target(name)`: a target registered in this process under `name`; then, for
`"sandbox"`, the control API of the sandbox started by `python -m sandbox up` (`sandbox.control.control_url`:
`SANDBOX_CONTROL_URL`, else `var/sandbox.env`). Anything else is unknown (`TargetUnavailable`,
naming the known targets).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import httpx

from runbook.errors import RunbookError
from tasks.clients import new_http_client

__all__ = [
    "ControlApiTarget",
    "FaultFailed",
    "FaultTarget",
    "TargetUnavailable",
    "WorldTarget",
    "open_target",
    "register_target",
    "registered_targets",
    "target_environment",
]


class TargetUnavailable(RunbookError):
    """No drill target by that name, or it cannot be reached."""


class FaultFailed(RunbookError):
    """A fault could not be injected or cleared."""


@runtime_checkable
class FaultTarget(Protocol):
    """How a drill injects and removes faults in one environment."""

    name: str
    environment: str  # "sandbox", "staging" or "production": what the target is marked as

    def inject(self, fault: str, args: Mapping[str, Any] | None = None) -> None:
        """Start the named fault with its arguments (`bad-deploy`, `api-down` {"api": "hume"}, ...)."""
        ...

    def lift(self, fault: str) -> None:
        """End one fault, leaving the rest of the world as the response left it (an outage ending)."""
        ...

    def clear(self) -> None:
        """Remove every fault and make the target healthy; idempotent."""
        ...

    def active(self) -> list[str]:
        """The faults in force, described."""
        ...


_lock = threading.Lock()
_registry: dict[str, FaultTarget] = {}


def register_target(target: FaultTarget) -> Callable[[], None]:
    """Make `target` reachable by its name in this process; returns the function that removes it."""
    with _lock:
        _registry[target.name] = target

    def unregister() -> None:
        with _lock:
            if _registry.get(target.name) is target:
                del _registry[target.name]

    return unregister


def registered_targets() -> list[str]:
    with _lock:
        return sorted(_registry)


def _registered(name: str) -> FaultTarget | None:
    with _lock:
        return _registry.get(name)


def target_environment(name: str) -> str:
    """What the target `name` is marked as, without contacting it."""
    found = _registered(name)
    if found is not None:
        return found.environment
    if name == "sandbox":
        return "sandbox"
    raise TargetUnavailable(_unknown(name))


def open_target(name: str, *, timeout_s: float = 30.0) -> FaultTarget:
    """The target called `name` (see the module docstring for the lookup order). Nothing is sent."""
    found = _registered(name)
    if found is not None:
        return found
    if name == "sandbox":
        return ControlApiTarget("sandbox", "sandbox", sandbox_control_url(), timeout_s=timeout_s)
    raise TargetUnavailable(_unknown(name))


def _unknown(name: str) -> str:
    known = ", ".join(sorted({"sandbox", *registered_targets()}))
    return f"target: unknown drill target {name!r}; known: {known}"


def sandbox_control_url() -> str:
    """The control API of the sandbox `python -m sandbox up` runs (`TargetUnavailable` when none answers)."""
    try:
        from sandbox.control import control_url
    except ImportError as exc:  # a production install may leave the sandbox out
        raise TargetUnavailable(f"target: the sandbox is not installed here ({exc})") from exc
    url = control_url()
    if url is None:
        raise TargetUnavailable(
            "target: no running sandbox answers (SANDBOX_CONTROL_URL or var/sandbox.env); "
            "start one with `python -m sandbox up`"
        )
    return url


def _describe(name: str, args: Mapping[str, Any]) -> str:
    return " ".join([name, *(f"{k}={v}" for k, v in args.items())])


class ControlApiTarget:
    """Faults through the sandbox's HTTP control API (sandbox/control.py); staging may serve the same.

    `POST {url}/faults/{name}` with the arguments as a JSON object injects, `DELETE {url}/faults/{name}`
    lifts one, `POST {url}/clear` clears all, `GET {url}/faults` lists the active ones. Every call has a
    timeout; a non-2xx answer is a `FaultFailed` carrying the server's reason.
    """

    def __init__(self, name: str, environment: str, url: str, *, timeout_s: float = 30.0) -> None:
        self.name = name
        self.environment = environment
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        try:
            with new_http_client(self.timeout_s) as http:
                response = http.request(
                    method, f"{self.url}{path}", json=dict(body) if body is not None else None
                )
        except httpx.HTTPError as exc:
            raise FaultFailed(f"{self.name}: {method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise FaultFailed(
                f"{self.name}: {method} {path}: HTTP {response.status_code}: {response.text[:300]}"
            )
        try:
            return response.json() if response.content else {}
        except ValueError as exc:
            raise FaultFailed(f"{self.name}: {method} {path}: not JSON: {response.text[:200]}") from exc

    def inject(self, fault: str, args: Mapping[str, Any] | None = None) -> None:
        self._call("POST", f"/faults/{fault}", args or {})

    def lift(self, fault: str) -> None:
        self._call("DELETE", f"/faults/{fault}")

    def clear(self) -> None:
        self._call("POST", "/clear")

    def active(self) -> list[str]:
        return [str(f) for f in self._call("GET", "/faults").get("active") or []]


class WorldTarget:
    """Faults on an in-process sandbox `World` (sandbox/world.py; tests and the demo register one)."""

    def __init__(self, world: Any, name: str = "sandbox", environment: str = "sandbox") -> None:
        self.world = world
        self.name = name
        self.environment = environment

    def inject(self, fault: str, args: Mapping[str, Any] | None = None) -> None:
        try:
            self.world.inject(fault, **dict(args or {}))
        except Exception as exc:  # the world's own errors (unknown fault, bad argument), named and chained
            raise FaultFailed(f"{self.name}: inject {_describe(fault, args or {})}: {exc}") from exc

    def lift(self, fault: str) -> None:
        try:
            self.world.clear(fault)
        except Exception as exc:
            raise FaultFailed(f"{self.name}: lift {fault}: {exc}") from exc

    def clear(self) -> None:
        try:
            self.world.clear()
        except Exception as exc:
            raise FaultFailed(f"{self.name}: clear: {exc}") from exc

    def active(self) -> list[str]:
        return [str(f) for f in self.world.active_faults()]
