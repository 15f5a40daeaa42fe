"""What a response runs with (`ResponseOptions`, from respond's parameters) and what a verified fix yields."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from runbook.models import RunbookOutcome

__all__ = ["FIXED", "Resolution", "ResponseOptions", "sentence"]

FIXED = (
    RunbookOutcome.RECOVERED,
    RunbookOutcome.RECOVERED_BY_ITSELF,
    RunbookOutcome.ROLLED_BACK,
    RunbookOutcome.MITIGATED,
)
"""Runbook outcomes after which the service is verified (the others hand over to people)."""


class ResponseOptions(BaseModel):
    """respond's parameters, once checked (see the flow's docstring for each)."""

    interval_s: float
    scale: float
    poll_s: float
    stability_s: float
    handover_s: int
    handover_poll_s: int
    options: dict[str, Any]
    workaround: str
    fix_window: str
    postmortem_at: str
    dry_run: bool


class Resolution(BaseModel):
    """The service is back: what the all-clear says about it."""

    summary: str
    root_cause: str
    resolution: list[str]


def sentence(text: str) -> str:
    """`text` as a sentence of the all-clear's list (capitalised, trimmed)."""
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text
