"""Reading the catalogue: `read_catalogue(path)` (a YAML or TOML file, every error as one line naming the
service and field), `catalogue_from_settings` (today's single-service settings as a catalogue of one) and
`load_catalogue(settings)`, which picks between them by `RUNBOOK_CATALOGUE`."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from runbook.catalogue.model import (
    IN_CLUSTER,
    Catalogue,
    CatalogueApi,
    Escalation,
    Health,
    Kubernetes,
    PagerDuty,
    SecretRef,
    Service,
    ServiceDatabase,
    Slack,
    Timings,
)
from runbook.errors import SettingsError
from runbook.settings import Settings, env_name

__all__ = ["CatalogueError", "catalogue_from_settings", "error_lines", "load_catalogue", "read_catalogue"]


class CatalogueError(SettingsError):
    """An invalid catalogue. `lines` holds one line per problem; the message is the first (and a count)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        super().__init__(lines[0] + more)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping (PyYAML keeps the last one)."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} written twice", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_mapping(node, deep=deep))


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError([f"{path}: cannot read it ({exc.strerror or exc})"]) from exc
    except UnicodeDecodeError as exc:
        raise CatalogueError([f"{path}: not UTF-8 text"]) from exc
    if path.suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CatalogueError([f"{path}: not valid TOML: {exc}"]) from exc
    if path.suffix not in (".yaml", ".yml"):
        raise CatalogueError([f"{path}: must end in .yaml, .yml or .toml"])
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogueError([f"{path}: not valid YAML{at}: {problem}"]) from exc


def _place(data: Any, loc: tuple[str | int, ...]) -> str:
    """`payments.database.dsn` for loc `("services", 1, "database", "dsn")` (the service by its name)."""
    if len(loc) >= 2 and loc[0] == "services" and isinstance(loc[1], int):
        services = data.get("services") if isinstance(data, Mapping) else None
        name = None
        if isinstance(services, list) and loc[1] < len(services) and isinstance(services[loc[1]], Mapping):
            name = services[loc[1]].get("name")
        head = name if isinstance(name, str) and name else f"services[{loc[1]}]"
        rest = loc[2:]
    else:
        head, rest = "catalogue", loc
    for part in rest:
        head += f"[{part}]" if isinstance(part, int) else f".{part}"
    return head


_MESSAGES = {"extra_forbidden": "unknown field", "missing": "required"}


def error_lines(exc: ValidationError, data: Any) -> list[str]:
    """One line per error of `exc` (raised validating `data`), naming the service and the field.

    Values are never echoed (a misplaced secret must not reach a terminal or a log): only what the
    messages themselves say."""
    lines: list[str] = []
    for err in exc.errors():
        msg = _MESSAGES.get(err["type"], str(err["msg"]).removeprefix("Value error, "))
        loc = tuple(part for part in err["loc"] if not str(part).startswith("function-after"))
        if not loc and err["type"] == "value_error":
            lines += msg.splitlines()  # the cross-service checks name the service and field themselves
            continue
        lines.append(f"{_place(data, loc)}: {msg}")
    return lines


def parse_catalogue(data: Any) -> Catalogue:
    """Validate already-parsed file content; CatalogueError (one line per problem) when invalid."""
    if not isinstance(data, Mapping):
        raise CatalogueError(["catalogue: must be a mapping with a 'services' list"])
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        raise CatalogueError(error_lines(exc, data)) from exc


def read_catalogue(path: Path | str) -> Catalogue:
    """The catalogue in the YAML (`.yaml`, `.yml`) or TOML (`.toml`) file `path`; CatalogueError if invalid.

    Secrets are only checked to be well-formed references here; `SecretRef.read()` reads them when used.
    """
    path = Path(path)
    return parse_catalogue(_parse(path))


def catalogue_from_settings(settings: Settings) -> Catalogue:
    """Today's single-service settings as a catalogue of one: the `service`, `kubernetes`, `database`,
    `external_apis`, `slack`, `pagerduty`, `sentry` (its project as an alias), `deploys` groups.

    Secrets become references to their settings' variables, already holding the settings' values (which may
    have come from `.env` or `RUNBOOK_CONFIG` rather than the environment)."""
    k8s = settings.kubernetes
    cluster = IN_CLUSTER if k8s.in_cluster else (k8s.api_url or k8s.context)
    aliases = [
        a for a in dict.fromkeys((settings.sentry.project, k8s.deployment)) if a != settings.service.name
    ]
    database = None
    if settings.database.dsn is not None:
        database = ServiceDatabase(dsn=SecretRef.holding(env_name("database", "dsn"), settings.database.dsn))
    apis = [
        CatalogueApi(
            name=api.name,
            health_url=api.health_url,
            feature_flag=api.feature_flag,
            feature=api.feature,
            method=api.method,
            token=None
            if api.token is None
            else SecretRef.holding(env_name("external_apis", i, "token"), api.token),
        )
        for i, api in enumerate(settings.external_apis)
    ]
    routing_key = settings.pagerduty.routing_key
    slack = settings.slack
    service = Service(
        name=settings.service.name,
        aliases=aliases,
        team="default",
        customer_facing=True,
        kubernetes=Kubernetes(
            cluster=cluster, namespace=k8s.namespace, deployment=k8s.deployment, container=k8s.container
        ),
        health=Health(
            base_url=settings.service.base_url,
            health_path=settings.service.health_path,
            api_health_path=settings.service.api_health_path,
        ),
        database=database,
        external_apis=apis,
        slack=Slack(alerts_channel=slack.alerts_channel, incidents_channel=slack.incidents_channel),
        pagerduty=PagerDuty(
            routing_key=None
            if routing_key is None
            else SecretRef.holding(env_name("pagerduty", "routing_key"), routing_key)
        ),
        escalation=Escalation(
            oncall=slack.oncall_handle,
            lead=slack.lead_handle,
            devops=slack.devops_channel,
            security=slack.security_handle,
            security_email=slack.security_email,
        ),
        rollback_window_min=settings.deploys.rollback_window_min,
        timings=Timings(),
    )
    return Catalogue(services=[service])


def load_catalogue(settings: Settings) -> Catalogue:
    """The catalogue file named by `RUNBOOK_CATALOGUE` when set, else the settings as a catalogue of one.

    Raises CatalogueError (a SettingsError) when the file is missing or invalid; its lines name each problem.
    """
    if settings.catalogue is None:
        return catalogue_from_settings(settings)
    path = Path(settings.catalogue)
    if not path.is_file():
        raise CatalogueError([f"{env_name('catalogue')}: file not found (got {str(path)!r})"])
    try:
        return read_catalogue(path)
    except CatalogueError as exc:
        raise CatalogueError([f"{path}: {line}" for line in exc.lines]) from exc
