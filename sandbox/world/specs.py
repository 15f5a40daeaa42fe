"""What each service of the world is: its name, cluster, namespace, Deployment, images, database,
external APIs, Slack channels and PagerDuty key (`ServiceSpec`), the world's fixed tokens, and the
ports a `port_base` world listens on.

Usage::

    specs_for("one")     # [EMOTIONSCARE]: today's single-service world
    specs_for("many")    # [EMOTIONSCARE, PAYMENTS, SEARCH]: three services on two clusters
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sandbox.pagerduty import DEFAULT_ROUTING_KEY
from sandbox.service import DEPLOYMENT, FEATURE_FLAGS, NAMESPACE, SERVICE

__all__ = [
    "ADMIN_TOKEN",
    "API_KEYS",
    "BASE_ENV",
    "BASE_REPLICAS",
    "EAST",
    "EMOTIONSCARE",
    "GOOD_IMAGE",
    "IMAGE_REPO",
    "PAYMENTS",
    "PORT_OFFSETS",
    "PREVIOUS_IMAGE",
    "SEARCH",
    "SENTRY_TOKEN",
    "SLACK_TOKEN",
    "WEST",
    "ServiceSpec",
    "Services",
    "specs_for",
]

IMAGE_REPO = "registry.local/emotionscare"
PREVIOUS_IMAGE = f"{IMAGE_REPO}:v1.0.0"
GOOD_IMAGE = f"{IMAGE_REPO}:v1.1.0"
SLACK_TOKEN = "xoxb-sandbox-token"
SENTRY_TOKEN = "sntrys-sandbox-token"
ADMIN_TOKEN = "sandbox-admin-token"
API_KEYS = {"hume": "hume-sandbox-key", "openai": "sk-sandbox-openai-key", "spotify": "spotify-sandbox-token"}
BASE_ENV: dict[str, str] = {"DB_POOL_SIZE": "5", **{flag: "true" for flag in FEATURE_FLAGS}}
BASE_REPLICAS = 2
EAST = "east"
WEST = "west"

# `port_base=N`: every listener at N + its offset, so a person can remember them. 11-13: the many world.
PORT_OFFSETS = {
    "postgres": 0,
    "kubernetes": 1,
    "service": 2,
    "slack": 3,
    "pagerduty": 4,
    "sentry": 5,
    "hume": 6,
    "openai": 7,
    "spotify": 8,
    "database-provider": 9,
    "control": 10,
    "kubernetes-west": 11,
    "service-payments": 12,
    "service-search": 13,
}

Services = Literal["one", "many"]


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the world, as the catalogue describes it."""

    name: str
    cluster: str
    namespace: str
    deployment: str
    team: str
    aliases: tuple[str, ...] = ()
    database: bool = True
    external_apis: bool = False
    env: dict[str, str] = field(default_factory=dict)
    alerts_channel: str = "#alerts-critical"
    incidents_channel: str = "#incidents"
    routing_key: str = DEFAULT_ROUTING_KEY
    routing_key_env: str = "RUNBOOK_PAGERDUTY_ROUTING_KEY"
    dsn_env: str = "RUNBOOK_DATABASE_DSN"
    port_name: str = "service"
    customer_facing: bool = True

    @property
    def image_repo(self) -> str:
        return f"registry.local/{self.name}"

    @property
    def previous_image(self) -> str:
        return f"{self.image_repo}:v1.0.0"

    @property
    def good_image(self) -> str:
        return f"{self.image_repo}:v1.1.0"

    @property
    def channels(self) -> tuple[str, str]:
        return (self.alerts_channel, self.incidents_channel)


EMOTIONSCARE = ServiceSpec(
    name=SERVICE,
    cluster=EAST,
    namespace=NAMESPACE,
    deployment=DEPLOYMENT,
    team="emotionscare",
    external_apis=True,
    env=BASE_ENV,
)
PAYMENTS = ServiceSpec(
    name="payments",
    cluster=EAST,
    namespace="payments",
    deployment="payments",
    team="payments",
    aliases=("payments-api",),
    env={"DB_POOL_SIZE": "5"},
    alerts_channel="#payments-alerts",
    incidents_channel="#payments-incidents",
    routing_key="R0SANDBOX0PAYMENTS0KEY0000000002",
    routing_key_env="SANDBOX_PAYMENTS_PAGERDUTY_KEY",
    dsn_env="SANDBOX_PAYMENTS_DATABASE_DSN",
    port_name="service-payments",
)
SEARCH = ServiceSpec(
    name="search",
    cluster=WEST,
    namespace="search",
    deployment="search",
    team="search",
    aliases=("search-api",),
    database=False,
    alerts_channel="#search-alerts",
    incidents_channel="#search-incidents",
    routing_key="R0SANDBOX0SEARCH0KEY000000000003",
    routing_key_env="SANDBOX_SEARCH_PAGERDUTY_KEY",
    dsn_env="",
    port_name="service-search",
    customer_facing=False,
)


def specs_for(services: Services) -> list[ServiceSpec]:
    """The world's services, the first being the default one (faults, `world.service`, settings)."""
    if services == "one":
        return [EMOTIONSCARE]
    if services == "many":
        return [EMOTIONSCARE, PAYMENTS, SEARCH]
    raise ValueError(f"services must be 'one' or 'many' (got {services!r})")
