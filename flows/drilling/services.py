"""Which catalogued service a drill exercises: the one given, else the catalogue's first; the monthly drill
takes the catalogue's services (or a configured list) in turn, one a month, skipping a service a scenario
cannot be played on (no database for a database failure, no such external API for an API outage).

Usage::

    service = drill_service("payments")                  # the catalogue's entry; DrillRefused if unknown
    service = monthly_service(scenario("database-failure"), ["emotionscare", "payments"], month=2)
"""

from __future__ import annotations

from flows.drilling.options import DrillRefused
from runbook.catalogue import Service
from runbook.drills import Scenario, Symptom
from tasks import runtime

__all__ = ["drill_service", "fits", "monthly_service"]


def drill_service(name: str | None) -> Service:
    """The catalogued service called (or aliased) `name`, the catalogue's first when None."""
    catalogue = runtime.catalogue()
    if name is None:
        return catalogue.services[0]
    found = catalogue.find(name)
    if found is None:
        raise DrillRefused(f"service: {name!r} is not in the catalogue (known: {', '.join(catalogue.names)})")
    return found


def fits(s: Scenario, service: Service) -> bool:
    """Whether scenario `s` can be played on `service` (its fault needs a database, or the named API)."""
    if s.fault in ("db-down", "slow-query") and service.database is None:
        return False
    if s.symptom == Symptom.API:
        return any(api.name == s.symptom_arg for api in service.external_apis)
    return True


def monthly_service(s: Scenario, names: list[str] | None, month: int) -> Service | None:
    """This month's service for `s`: `names` (default: the catalogue's, in its order) in turn, starting at
    the month's place, the first that `fits`; None when none does."""
    services = [drill_service(n) for n in names] if names else list(runtime.catalogue().services)
    for i in range(len(services)):
        candidate = services[(month - 1 + i) % len(services)]
        if fits(s, candidate):
            return candidate
    return None
