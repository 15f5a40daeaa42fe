"""The exception hierarchy of the project: everything we raise derives from `RunbookError`.

Usage::

    try:
        store.set_status(incident_id, IncidentStatus.RESOLVED, at=now, actor="runbook:service-down")
    except IllegalTransition as exc:      # a RunbookError
        log.warning("%s", exc)

Naming follows the house style: `<What>Failed` for an operation that could not complete, `<What>TimedOut`
for one that ran out of time. Each lives next to the code that raises it (tasks/, flows/, intake/) and
subclasses one of the classes here, so a caller can catch `RunbookError` to handle all of ours and nothing
else.
"""

from __future__ import annotations

__all__ = [
    "IllegalTransition",
    "NotFound",
    "RunbookError",
    "SettingsError",
    "StoreFailed",
]


class RunbookError(Exception):
    """Root of every exception this project raises on purpose."""


class IllegalTransition(RunbookError):
    """An incident status change that the transition table (`runbook.models.TRANSITIONS`) does not allow."""

    def __init__(self, current: str, requested: str) -> None:
        self.current = current
        self.requested = requested
        super().__init__(f"illegal incident transition {current} -> {requested}")


class SettingsError(RunbookError):
    """Invalid settings. The message is one line naming the environment variable and the reason."""


class StoreFailed(RunbookError):
    """The incident store could not complete an operation (connection lost, schema too new, ...)."""


class NotFound(StoreFailed):
    """The store has no record with the requested id or key."""
