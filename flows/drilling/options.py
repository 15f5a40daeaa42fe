"""The options of a drill, one model for the four drill flows (flows/drills.py), and `DrillRefused`.

Usage::

    opts = DrillOptions.model_validate({"via": "intake", "poll_interval_s": 0.05})
    opts.recover_deadline_s                   # 600.0, the default; bad values: pydantic's ValidationError
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.parameters import PollSeconds, Seconds
from runbook.errors import RunbookError

__all__ = ["ACTOR", "DrillOptions", "DrillRefused", "Via"]

Via = Literal["runbook", "respond", "intake"]
ACTOR = "drill"


class DrillRefused(RunbookError):
    """The target may not be drilled (production without `allow_production`, or a mismatch)."""


class DrillOptions(BaseModel):
    """A drill's parameters, as the drill flows take them (each flow's docstring says what they mean)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str = "sandbox"
    service: str | None = None
    allow_production: bool = False
    via: Via = "runbook"
    poll_interval_s: PollSeconds = 1.0
    detect_deadline_s: Seconds = 120.0
    recover_deadline_s: Seconds = 600.0
    outage_s: Seconds = 60.0
    runbook_parameters: dict[str, Any] = Field(default_factory=dict)
    post_to_slack: bool = True

    @field_validator("runbook_parameters", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value
