"""Printing the settings: `env_lines` (what `python -m runbook.settings` prints), secrets masked."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    SecretStr,
)

from runbook.settings.fields import MASK, mask_url, model_of
from runbook.settings.loading import env_name
from runbook.settings.model import Settings

__all__ = ["env_lines", "plain", "render"]


def plain(value: Any, reveal: bool) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value() if reveal else MASK
    if isinstance(value, BaseModel):
        return {k: plain(getattr(value, k), reveal) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {k: plain(v, reveal) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, reveal) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _leaves(settings: Settings) -> Iterator[tuple[str, Any, bool]]:
    """(env name, value, is_secret) of every setting, in declaration order."""
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if model_of(field.annotation) is not None:
            for sub, sub_field in type(value).model_fields.items():
                yield env_name(name, sub), getattr(value, sub), "SecretStr" in repr(sub_field.annotation)
        else:
            yield env_name(name), value, False


def env_lines(settings: Settings, *, reveal_secrets: bool = False) -> list[str]:
    """The settings as `NAME=value` lines a shell can source; unset values as comments.

    Secrets print as `**********` unless `reveal_secrets` (only for throwaway credentials, e.g. the
    sandbox's). A DSN's password in `RUNBOOK_STORE_URL` is masked likewise.
    """
    lines = []
    for name, value, _secret in _leaves(settings):
        if value is None:
            lines.append(f"# {name} is unset")
            continue
        shown = plain(value, reveal_secrets)
        if name == env_name("store", "url") and not reveal_secrets:
            shown = mask_url(shown)
        lines.append(f"{name}={shlex.quote(render(shown))}")
    return lines
