"""`Settings`: every group under one root, read from its sources (`load_settings` builds it), with the
checks that span groups (production refuses insecure settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from runbook.settings.fields import ENV_PREFIX, env_config, unique_names
from runbook.settings.groups import (
    AutomationSettings,
    DatabaseSettings,
    DeploySettings,
    ExternalApi,
    IntakeSettings,
    KubernetesSettings,
    PagerDutySettings,
    PrefectSettings,
    ResponseSettings,
    SafetySettings,
    SentrySettings,
    ServiceSettings,
    SlackSettings,
    StoreSettings,
    default_apis,
)

__all__ = ["Environment", "Settings"]


Environment = Literal["sandbox", "development", "staging", "production"]


class Settings(BaseSettings):
    """All settings. Build with `load_settings()`, which turns validation errors into one line."""

    model_config = SettingsConfigDict(**env_config(), env_nested_delimiter="_", env_nested_max_split=1)

    environment: Environment = Field(
        "development",
        description="where this runs; production (refuses insecure settings) must be set explicitly",
    )
    config: Path | None = Field(None, description="TOML file with more settings (read from the environment)")
    catalogue: Path | None = Field(
        None,
        description="the service catalogue (YAML or TOML, docs/catalogue.md); unset: the settings below are "
        "its one service",
    )
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    external_apis: list[ExternalApi] = Field(
        default_factory=default_apis, description="external APIs and the feature flags they control, JSON"
    )
    slack: SlackSettings = Field(default_factory=SlackSettings)
    pagerduty: PagerDutySettings = Field(default_factory=PagerDutySettings)
    sentry: SentrySettings = Field(default_factory=SentrySettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    deploys: DeploySettings = Field(default_factory=DeploySettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    response: ResponseSettings = Field(default_factory=ResponseSettings)
    automation: AutomationSettings = Field(default_factory=AutomationSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        config = _config_path(init_settings)
        if config is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return (*sources, file_secret_settings)

    @field_validator("external_apis")
    @classmethod
    def _unique_apis(cls, apis: list[ExternalApi]) -> list[ExternalApi]:
        unique_names(apis)
        return apis

    @model_validator(mode="after")
    def _secure_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        if not self.kubernetes.verify_ssl:
            raise ValueError("RUNBOOK_KUBERNETES_VERIFY_SSL: must be true in production (got false)")
        if (
            not self.intake.loopback_only
            and not self.intake.tokens
            and self.intake.sentry_client_secret is None
        ):
            raise ValueError(
                f"RUNBOOK_INTAKE_TOKENS: required in production when intake listens on "
                f"{self.intake.host!r} (anyone on the network could start runbooks)"
            )
        return self

    def api(self, name: str) -> ExternalApi:
        """The external API called `name` (KeyError naming the known ones otherwise)."""
        for api in self.external_apis:
            if api.name == name:
                return api
        raise KeyError(f"no external API {name!r}; known: {', '.join(a.name for a in self.external_apis)}")


def _config_path(init_settings: PydanticBaseSettingsSource) -> Path | None:
    init_kwargs: Mapping[str, Any] = getattr(init_settings, "init_kwargs", {})
    value = init_kwargs.get("config") or os.environ.get(f"{ENV_PREFIX}CONFIG") or None
    return None if value is None else Path(value)
