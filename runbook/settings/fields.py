"""The building blocks of the settings: the environment prefix, the validated field types (URLs,
paths, Slack channels and handles, email addresses, feature-flag env vars, Kubernetes names), the group base class, `mask_url`,
`unique_names` (the one duplicate-name rule of the settings' and the catalogue's API lists), and
`env_config` (how every settings model of the project reads the environment and `.env`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
)
from pydantic_settings import SettingsConfigDict

__all__ = [
    "ENV_PREFIX",
    "MASK",
    "Channel",
    "Email",
    "EnvFlag",
    "Group",
    "Handle",
    "HttpUrl",
    "K8sName",
    "UrlPath",
    "env_config",
    "http_url",
    "mask_url",
    "model_of",
    "unique_names",
]

ENV_PREFIX = "RUNBOOK_"
MASK = "**********"


def env_config(env_prefix: str = ENV_PREFIX) -> SettingsConfigDict:
    """A settings model's sources, alike for all: `PREFIX_*` variables and `.env`, unknown names ignored.

    `Settings` and the crash-detection settings read the same places the same way; a model
    adds what is its own (`SettingsConfigDict(**env_config(), env_nested_delimiter="_")`).
    """
    return SettingsConfigDict(
        env_prefix=env_prefix,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )


# --- small validators ------------------------------------------------------------------------------------


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL (got {value!r})")
    return value.rstrip("/")


def _path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must start with '/' (got {value!r})")
    return value


def _channel(value: str) -> str:
    if not value.startswith("#") or len(value) < 2:
        raise ValueError(f"must start with '#' (got {value!r})")
    return value


def _handle(value: str) -> str:
    if not value.startswith("@") or len(value) < 2:
        raise ValueError(f"must start with '@' (got {value!r})")
    return value


def _email(value: str) -> str:
    if "@" not in value.strip("@"):
        raise ValueError(f"must be an email address (got {value!r})")
    return value


_FLAG = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _env_flag(value: str) -> str:
    if not _FLAG.match(value):
        raise ValueError(f"must be an upper-case env var name (got {value!r})")
    return value


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value) or len(value) > 63:
        raise ValueError(f"must be a Kubernetes name: lower-case letters, digits and '-' (got {value!r})")
    return value


HttpUrl = Annotated[str, AfterValidator(http_url)]
UrlPath = Annotated[str, AfterValidator(_path)]
Channel = Annotated[str, AfterValidator(_channel)]
Handle = Annotated[str, AfterValidator(_handle)]
Email = Annotated[str, AfterValidator(_email)]
EnvFlag = Annotated[str, AfterValidator(_env_flag)]
K8sName = Annotated[str, AfterValidator(_dns_label)]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)


def unique_names(items: Sequence[N]) -> Sequence[N]:
    """`items` unchanged, or ValueError naming the first name listed twice (a list validator's body)."""
    names = [item.name for item in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate API name {dupes[0]!r}")
    return items


def mask_url(url: str) -> str:
    """`url` with the password of its user info replaced by `**********` (DSNs are printed this way)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class of a field annotation that is one (a group), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
