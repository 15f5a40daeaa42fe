"""Where a drill injects its fault: a small interface, the sandbox's implementations, and the lookup.

Usage::

    from tasks.drill_targets import open_target, register_target, target_environment

    env = target_environment("sandbox")        # "sandbox": how the target is marked (it is not contacted)
    target = open_target("sandbox")            # a FaultTarget (nothing sent yet)
    target.inject("api-down", "hume")          # the sandbox fault (sandbox/faults.py)
    target.active()                            # ["api-down hume"]
    target.clear()                             # every fault removed; the world healthy again

    unregister = register_target(WorldTarget(world))   # an in-process sandbox World (tests, the demo)

The interface (`FaultTarget`) is three calls; a staging environment implements it (or serves the same
HTTP control API as the sandbox) and is registered or reached through its control URL. Marking is part
of the target (`environment`), read without contacting it, so the production rule
(runbook/drills.py `check_target`) is decided before a single request goes out.

Lookup order of `open_target(name)`: a target registered in this process under `name`; then the
sandbox's control API for `"sandbox"`. Anything else is unknown (`TargetUnavailable`, naming the known
targets).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import httpx

from runbook.errors import RunbookError

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
    """How a drill injects and clears faults in one environment."""

    name: str
    environment: str  # "sandbox", "staging" or "production": what the target is marked as

    def inject(self, fault: str, arg: str | None = None) -> None:
        """Start the named fault (`bad-deploy`, `db-down`, `api-down hume`, ...)."""
        ...

    def clear(self) -> None:
        """Remove every fault; idempotent (clearing a clean target is fine)."""
        ...

    def active(self) -> list[str]:
        """The faults in force, as `"name arg"` strings."""
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


def open_target(name: str, *, timeout_s: float = 10.0) -> FaultTarget:
    """The target called `name` (see the module docstring for the lookup order)."""
    found = _registered(name)
    if found is not None:
        return found
    if name == "sandbox":
        return ControlApiTarget("sandbox", "sandbox", _sandbox_control_url(), timeout_s=timeout_s)
    raise TargetUnavailable(_unknown(name))


def _unknown(name: str) -> str:
    known = ", ".join(sorted({"sandbox", *registered_targets()}))
    return f"target: unknown drill target {name!r}; known: {known}"


def _sandbox_control_url() -> str:
    try:
        from sandbox.control import control_url
    except ImportError as exc:  # the sandbox package is optional in a production install
        raise TargetUnavailable(f"target: the sandbox is not installed here ({exc})") from exc
    url = control_url()
    if url is None:
        raise TargetUnavailable("target: no sandbox is running (start one with `python -m sandbox up`)")
    return str(url)


class ControlApiTarget:
    """Faults through an HTTP control API (the sandbox's `sandbox/control.py`; staging may serve the same).

    `POST {url}/faults {"name": ..., "arg": ...}` injects, `POST {url}/faults/clear` clears,
    `GET {url}/faults` lists. Every call has a timeout; a non-2xx answer is a `FaultFailed` with the
    server's reason.
    """

    def __init__(self, name: str, environment: str, url: str, *, timeout_s: float = 10.0) -> None:
        self.name = name
        self.environment = environment
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            with httpx.Client(timeout=self.timeout_s) as http:
                response = http.request(method, f"{self.url}{path}", json=body)
        except httpx.HTTPError as exc:
            raise FaultFailed(f"{self.name}: {method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise FaultFailed(
                f"{self.name}: {method} {path}: HTTP {response.status_code}: {response.text[:300]}"
            )
        return response.json() if response.content else None

    def inject(self, fault: str, arg: str | None = None) -> None:
        self._call("POST", "/faults", {"name": fault, "arg": arg})

    def clear(self) -> None:
        self._call("POST", "/faults/clear")

    def active(self) -> list[str]:
        answer = self._call("GET", "/faults") or {}
        return [str(f) for f in answer.get("active", [])]


class WorldTarget:
    """Faults on an in-process sandbox `World` (tests and the demo register one)."""

    def __init__(self, world: Any, name: str = "sandbox", environment: str = "sandbox") -> None:
        self.world = world
        self.name = name
        self.environment = environment

    def inject(self, fault: str, arg: str | None = None) -> None:
        try:
            self.world.inject(fault, arg)
        except Exception as exc:  # the world's own errors, named and chained
            raise FaultFailed(f"{self.name}: inject {fault} {arg or ''}: {exc}".rstrip()) from exc

    def clear(self) -> None:
        try:
            self.world.clear()
        except Exception as exc:
            raise FaultFailed(f"{self.name}: clear: {exc}") from exc

    def active(self) -> list[str]:
        return [str(f) for f in self.world.active_faults()]
