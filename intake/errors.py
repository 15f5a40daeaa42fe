"""Exceptions of the alert intake, under `runbook.errors.RunbookError`.

Usage::

    try:
        alerts = parse("alertmanager", body, headers, ctx)
    except PayloadInvalid as exc:     # answered 422 with exc.message (names the field)
        ...
"""

from __future__ import annotations

from runbook.errors import RunbookError

__all__ = ["BodyNotJSON", "DispatchFailed", "IntakeError", "PayloadInvalid", "UnknownSource"]


class IntakeError(RunbookError):
    """Root of the intake's exceptions."""


class BodyNotJSON(IntakeError):
    """The body is not valid UTF-8 JSON (answered 400). `message` says where decoding failed."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class PayloadInvalid(IntakeError):
    """The body is JSON but not the source's shape. `message` names the field: `alerts[0].status: ...`."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class UnknownSource(IntakeError):
    """No parser for that source name."""


class DispatchFailed(IntakeError):
    """Starting the `respond` flow run for an incident failed; the dispatcher retries it later."""
