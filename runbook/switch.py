"""The automation switch: which mode decides a runbook's next write, from what people set.

Three modes, strictest last: `auto` (act), `approve` (each write waits for a person's yes),
`observe` (each write is only planned: the run becomes a dry run). A global mode and, per service, an
optional override; the effective mode is the stricter of the two, so a service can be turned down
below the global mode but never up above it.

Pure: no Prefect here. `flows/switch.py` reads the values from Prefect Variables and hands them to
`decide`. A value nobody can read, or one that is not a mode, decides `approve` (`FAIL_SAFE`): no
write without a person, and, unlike `observe`, a person is asked, so the incident still gets a
human decision rather than a silently recorded plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["FAIL_SAFE", "Decision", "Mode", "decide", "parse_mode", "unreadable"]


class Mode(StrEnum):
    AUTO = "auto"
    APPROVE = "approve"
    OBSERVE = "observe"

    @property
    def strictness(self) -> int:
        return _ORDER.index(self)


_ORDER = (Mode.AUTO, Mode.APPROVE, Mode.OBSERVE)
FAIL_SAFE = Mode.APPROVE


@dataclass(frozen=True)
class Decision:
    """The mode that decides, and where it came from ("global", "service emotionscare", or why it
    fell back to the safe mode)."""

    mode: Mode
    source: str

    def label(self) -> str:
        """How every message names it: "mode observe (global)"."""
        return f"mode {self.mode.value} ({self.source})"


def parse_mode(value: Any, where: str) -> Mode:
    """`value` as a mode ("auto", " Observe ", ...); ValueError naming `where` and the choices."""
    if isinstance(value, str):
        try:
            return Mode(value.strip().strip('"').lower())
        except ValueError:
            pass
    choices = ", ".join(m.value for m in Mode)
    raise ValueError(f"{where}: {value!r} is not a mode (one of {choices})")


def unreadable(why: str) -> Decision:
    """The fail-safe decision when the switch itself cannot be read."""
    return Decision(FAIL_SAFE, f"fail-safe: {why}")


def decide(
    global_value: Any,
    by_service: Any,
    service: str,
    *,
    default: Mode = Mode.AUTO,
    global_name: str = "global",
    by_service_name: str = "by service",
) -> Decision:
    """The effective mode for `service`: the stricter of the global value (None: `default`) and the
    service's entry in the `by_service` map (None or no entry: no override). A bad value → `FAIL_SAFE`."""
    try:
        overall = default if global_value is None else parse_mode(global_value, global_name)
        decision = Decision(overall, "global" if global_value is not None else "default")
        if by_service is None:
            return decision
        if not isinstance(by_service, Mapping):
            raise ValueError(f"{by_service_name}: {by_service!r} is not a map of service → mode")
        if service not in by_service:
            return decision
        own = parse_mode(by_service[service], f"{by_service_name}[{service!r}]")
    except ValueError as exc:
        return unreadable(str(exc))
    if own.strictness > overall.strictness:
        return Decision(own, f"service {service}")
    return decision
