"""The demo's settings (`make demo`, sandbox/demo/): where its Prefect server, sandbox and files live.

Usage::

    settings = load_demo_settings()     # raises SettingsError (one line naming the variable) when invalid
    settings.prefect_port               # 4200   (RUNBOOK_DEMO_PREFECT_PORT)
    settings.prefect_db                 # "postgresql" | "sqlite"   (RUNBOOK_DEMO_PREFECT_DB)
    settings.stability_window_s         # 30: respond's watch after the fix (the guide: 120)

Read from the environment and `.env`, like the runbooks' settings (`runbook.settings`), but kept out of
that production model: a deployment of the runbooks has no demo. The intake port the demo uses is the
runbooks' own `RUNBOOK_INTAKE_PORT`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from runbook.errors import SettingsError

__all__ = ["ENV_PREFIX", "DemoSettings", "load_demo_settings"]

ENV_PREFIX = "RUNBOOK_DEMO_"


class DemoSettings(BaseSettings):
    """`make demo`: its ports, its Prefect server's database and its folder."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    prefect_port: int = Field(4200, ge=1024, le=65535, description="the demo's Prefect server and UI port")
    sandbox_port_base: int = Field(
        8100, ge=1024, le=65522, description="the sandbox listens on this port and the next thirteen"
    )
    prefect_db: Literal["postgresql", "sqlite"] = Field(
        "postgresql",
        description="the Prefect server's database: the embedded PostgreSQL (default) or SQLite",
    )
    var: Path = Field(Path("var/demo"), description="the demo's state and logs (emptied at each start)")
    stability_window_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="respond's stability watch after the fix, in the demo (the guide, and respond's default: "
        "120 s); shorter so the demo's incident ends in about a minute",
    )
    settle_s: float = Field(
        10.0,
        ge=0,
        le=600,
        description="the runbooks' wait after new pods are ready before verifying, in the demo's respond "
        "(the guide: 30 s)",
    )


def load_demo_settings(*, env_file: Path | str | None = ".env", **overrides: Any) -> DemoSettings:
    """The demo's settings; `SettingsError` with one line (`RUNBOOK_DEMO_PREFECT_PORT: ...`) when invalid."""
    try:
        return DemoSettings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        name = ENV_PREFIX + "_".join(str(part) for part in first.get("loc", ())).upper()
        line = f"{name}: {first.get('msg', 'invalid')} (got {first.get('input')!r})"
        if len(errors) > 1:
            line += f" (and {len(errors) - 1} more)"
        raise SettingsError(line) from exc
