"""Loading the settings: `load_settings()` (environment, `.env`, the TOML file of `RUNBOOK_CONFIG`,
defaults) with every error as one line naming its environment variable; `env_name` for a field."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_settings import SettingsError as PydanticSettingsError

from runbook.errors import SettingsError
from runbook.settings.fields import ENV_PREFIX, mask_url, model_of
from runbook.settings.model import Settings

__all__ = ["env_name", "load_settings"]


def env_name(*loc: str | int) -> str:
    """The environment variable of a settings field: `env_name("slack", "incidents_channel")`.

    Items inside a list or dict field are named after the variable holding the JSON:
    `RUNBOOK_EXTERNAL_APIS[0].health_url`.
    """
    if not loc:
        return ENV_PREFIX.rstrip("_")
    field = Settings.model_fields.get(str(loc[0]))
    grouped = field is not None and model_of(field.annotation) is not None and len(loc) > 1
    head, rest = (loc[:2], loc[2:]) if grouped else (loc[:1], loc[1:])
    name = ENV_PREFIX + "_".join(str(part) for part in head).upper()
    for i, item in enumerate(rest):
        name += f"[{item}]" if i == 0 or isinstance(item, int) else f".{item}"
    return name


def _is_secret(loc: tuple[str | int, ...]) -> bool:
    """Whether the field at `loc` holds a secret (its value must never appear in a message)."""
    model: type[BaseModel] | None = Settings
    annotation: Any = None
    for part in loc:
        if isinstance(part, int) or model is None:
            if annotation is not None and "SecretStr" in repr(annotation):
                return True
            continue
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        model = model_of(annotation)
        inner = [a for a in get_args(annotation) if model_of(a) is not None]
        if model is None and inner:
            model = model_of(inner[0])
    return annotation is not None and "SecretStr" in repr(annotation)


def _one_line(err: Mapping[str, Any]) -> str:
    loc = tuple(err.get("loc", ()))
    msg = str(err.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:  # a model-level check: the message names its variable itself
        return msg
    line = f"{env_name(*loc)}: {msg}"
    if "(got " not in msg and err.get("type") != "missing":
        value = err.get("input")
        if _is_secret(loc):
            line += " (got a secret value, not shown)"
        elif isinstance(value, str | int | float | bool):
            shown = mask_url(value) if isinstance(value, str) else value
            line += f" (got {shown!r})"
    return line


def _json_culprit(field: str) -> str:
    """Name the environment variable whose JSON failed to parse for top-level field `field`."""
    prefix = f"{ENV_PREFIX}{field.upper()}"
    for key in sorted(os.environ):
        if key.upper() == prefix or key.upper().startswith(prefix + "_"):
            try:
                json.loads(os.environ[key])
            except ValueError:
                if os.environ[key][:1] in "[{":
                    return key.upper()
    return prefix


def load_settings(*, env_file: Path | str | None = ".env", **overrides: Any) -> Settings:
    """Read the settings (see the module docstring); raise `SettingsError` with one line when invalid.

    `overrides` are field values that win over every source: `load_settings(environment="sandbox",
    slack={"incidents_channel": "#inc"})`; `config=path` names the TOML file like `RUNBOOK_CONFIG`.
    `env_file=None` ignores `.env`.
    """
    config = overrides.get("config") or os.environ.get(f"{ENV_PREFIX}CONFIG") or None
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise SettingsError(f"{ENV_PREFIX}CONFIG: file not found (got {str(path)!r})")
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{ENV_PREFIX}CONFIG: {path} is not valid TOML: {exc}") from exc
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        errors = exc.errors()
        line = _one_line(errors[0])
        if len(errors) > 1:
            line += f" (and {len(errors) - 1} more)"
        raise SettingsError(line) from exc
    except PydanticSettingsError as exc:
        match = re.search(r'field "([^"]+)"', str(exc))
        field = match.group(1) if match else "?"
        raise SettingsError(f"{_json_culprit(field)}: not valid JSON") from exc
