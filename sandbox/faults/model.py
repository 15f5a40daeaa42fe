"""What a fault is: its parameters (checked, with their CLI spelling), what applying it returns, the
record of an active one, and the errors a bad name, argument or conflict raises."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ActiveFault",
    "Applied",
    "Fault",
    "FaultArgError",
    "FaultConflict",
    "Param",
    "Undo",
    "UnknownFault",
]

Undo = Callable[[], str]


@dataclass(frozen=True)
class Applied:
    """What applying a fault did (a sentence), how to undo it, and what it must remember."""

    message: str
    undo: Undo
    memo: dict[str, Any] = field(default_factory=dict)
    still: Callable[[], bool] | None = None
    """Whether its effect is still in force, read from the world (None: until cleared)."""


class UnknownFault(ValueError):
    """No fault by that name (the message lists the valid ones)."""


class FaultArgError(ValueError):
    """A fault argument is missing, unknown or out of range (the message names it)."""


class FaultConflict(RuntimeError):
    """The fault cannot act in the world's current state (e.g. the database is stopped)."""


@dataclass(frozen=True)
class Param:
    """One argument of a fault: its keyword, type, default, bounds, and whether it is the positional one."""

    name: str
    kind: type
    default: Any
    help: str
    positional: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def coerce(self, fault: str, raw: Any) -> Any:
        label = f"{fault}: {self.name}"
        if self.kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise FaultArgError(f"{label} must be true or false (got {raw!r})")
        if self.kind in (int, float):
            if isinstance(raw, bool):
                raise FaultArgError(f"{label} must be a number (got {raw!r})")
            try:
                value: Any = self.kind(raw)
            except (TypeError, ValueError):
                raise FaultArgError(f"{label} must be a number (got {raw!r})") from None
            if self.minimum is not None and value < self.minimum:
                raise FaultArgError(f"{label} must be >= {self.minimum:g} (got {raw!r})")
            if self.maximum is not None and value > self.maximum:
                raise FaultArgError(f"{label} must be <= {self.maximum:g} (got {raw!r})")
            return value
        text = str(raw).strip()
        text = self.aliases.get(text, text)
        if self.choices and text not in self.choices:
            raise FaultArgError(f"{label} must be one of {', '.join(self.choices)} (got {raw!r})")
        return text


@dataclass(frozen=True)
class Fault:
    """A fault: its name, what it does, its arguments, and how it is applied."""

    name: str
    summary: str
    params: tuple[Param, ...]
    apply: Callable[..., Applied]

    def args(self, arg: Any = None, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Validated arguments: `arg` fills the positional parameter; unknown keywords are refused."""
        given = dict(kwargs or {})
        by_name = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(by_name))
        if unknown:
            known = ", ".join(by_name) or "none"
            raise FaultArgError(f"{self.name}: unknown argument(s) {', '.join(unknown)} (arguments: {known})")
        if arg is not None:
            positional = next((p for p in self.params if p.positional), None)
            if positional is None:
                raise FaultArgError(f"{self.name}: takes no positional argument (got {arg!r})")
            if positional.name in given:
                raise FaultArgError(f"{self.name}: {positional.name} given twice")
            given[positional.name] = arg
        return {
            p.name: p.coerce(self.name, given[p.name]) if given.get(p.name) is not None else p.default
            for p in self.params
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "args": [
                {
                    "name": p.name,
                    "positional": p.positional,
                    "default": p.default,
                    "choices": list(p.choices),
                    "help": p.help,
                }
                for p in self.params
            ],
        }


@dataclass
class ActiveFault:
    """A fault in force: its arguments, what it did, and how to undo it."""

    name: str
    args: dict[str, Any]
    message: str
    undo: Undo
    injected_at: datetime
    memo: dict[str, Any] = field(default_factory=dict)
    still: Callable[[], bool] | None = None

    def in_force(self) -> bool:
        """Its effect is still there: a fault a rollback or a person undid (a bad deploy no longer live,
        a stopped database started again) is not, though its record stays until cleared."""
        return True if self.still is None else self.still()

    def describe(self) -> dict[str, Any]:
        return {"args": self.args, "message": self.message, "injected_at": self.injected_at.isoformat()}
