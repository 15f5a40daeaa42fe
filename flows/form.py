"""The hand-start form of each deployment: `service` is a choice of the catalogue's services.

Usage::

    schema = service_choices(schema, ["emotionscare", "payments"])   # a parameter schema, as a dict
    deployment = with_service_choices(flow.to_deployment(name="service-down"), catalogue_services())

    $ python -m flows.form apply     # after `prefect deploy --all`: the registered deployments get the list

Why hand-written: Prefect builds a deployment's `parameter_openapi_schema` from the flow's signature
(`prefect.utilities.callables.parameter_schema`, called by `flow.to_deployment` and `prefect deploy`), so
the schema can only say what the code says, and the services are configuration (`RUNBOOK_CATALOGUE`),
read where the deployments are registered. Prefect has no option to add choices to a parameter, so they
are written into the stored schema here: an `enum` on `service`, which the UI shows as a select and the
server, enforcing the schema (`enforce_parameter_schema`), uses to refuse any other value (409). The
flows' `incident` parameter (a whole `IncidentRef`, for Python callers) is taken out of the form: the
form has its fields flat (`service`, `severity`, `summary`, `incident_id`).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["apply", "catalogue_services", "main", "service_choices", "with_service_choices"]

SERVICE = "service"
"""The parameter that names the service a run works on."""
PYTHON_ONLY = "incident"
"""The parameter Python callers use to pass a whole IncidentRef; not in the form."""


def service_choices(schema: dict[str, Any], services: Sequence[str]) -> dict[str, Any]:
    """`schema` (a deployment's parameter schema) with `service` a choice of `services`, in their order,
    the first one the default, and without the Python-only `incident` parameter.

    Hand-written because Prefect derives the schema from the flow's signature only (module docstring).
    A schema without a `service` parameter keeps its properties (but `incident`)."""
    if not services:
        raise ValueError("service_choices: no services (the catalogue has at least one)")
    patched = copy.deepcopy(schema)
    props = patched.setdefault("properties", {})
    props.pop(PYTHON_ONLY, None)
    patched["required"] = [name for name in patched.get("required", []) if name != PYTHON_ONLY]
    definitions = patched.get("definitions", {})
    others = {name: spec for name, spec in definitions.items() if name != "IncidentRef"}
    if '/definitions/IncidentRef"' not in json.dumps([props, others]):
        definitions.pop("IncidentRef", None)  # its schema, once `incident` is gone
    if SERVICE in props:
        props[SERVICE] = {
            **props[SERVICE],
            "type": "string",
            "enum": list(services),
            "default": services[0],
        }
    return patched


def catalogue_services() -> list[str]:
    """The catalogue's service names, in its order (`RUNBOOK_CATALOGUE`, else the settings' one)."""
    from runbook.catalogue import load_catalogue
    from runbook.settings import load_settings

    return load_catalogue(load_settings()).names


def with_service_choices(deployment: Any, services: Sequence[str]) -> Any:
    """A RunnerDeployment (from `flow.to_deployment`) with its form patched by `service_choices`, set
    where `prefect deploy` itself sets the schema it built (`_parameter_openapi_schema`)."""
    from prefect.utilities.callables import ParameterSchema

    schema = deployment._parameter_openapi_schema.model_dump()
    deployment._parameter_openapi_schema = ParameterSchema(**service_choices(schema, services))
    return deployment


def apply(names: Sequence[str], services: Sequence[str]) -> list[str]:
    """Patch the registered deployments `names` ("flow/deployment") on the server PREFECT_API_URL names;
    the ones patched (a deployment not registered is skipped)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.exceptions import ObjectNotFound

    done = []
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                deployment = client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            schema = service_choices(deployment.parameter_openapi_schema or {}, services)
            update = DeploymentUpdate(parameter_openapi_schema=schema)
            client.update_deployment(deployment.id, update)
            done.append(name)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.form", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["apply"], help="patch the deployments prefect.yaml registered")
    parser.parse_args(argv)
    from flows import catalogue
    from runbook.errors import SettingsError

    try:
        services = catalogue_services()
    except SettingsError as exc:
        print(f"flows.form: {exc}", file=sys.stderr)
        return 2
    names = [f"{entry.flow.name}/{entry.name}" for entry in catalogue.entries()]
    done = apply(names, services)
    print(
        f"service choices ({', '.join(services)}) set on {len(done)} of {len(names)} deployments", flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
