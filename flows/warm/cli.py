"""`python -m flows.warm NAME...`: the warm runner for the deployments named, and only those.

Usage::

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.warm respond
    python -m flows.warm respond --limit 4 --poll 0.2
    python -m flows.warm --flow bench.standin:respond=warm        # any flow, deployment "warm"
    python -m flows.warm respond --parameters '{"stability_window_s": 5}'   # the deployment's defaults

No name and no `--flow` is refused (one line, exit 2): nothing runs here by default. A catalogue
drill, or a flow with crash/cancellation hooks, is refused too (flows/warm/targets.py says why).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence

from flows.warm.runner import WarmRunner
from flows.warm.targets import NotWarmSafe, WarmTarget
from runbook.errors import SettingsError

__all__ = ["main"]

NO_NAMES = (
    "name the deployments to run warm (e.g. `python -m flows.warm respond`); "
    "it runs none by default, and flows.serve or a worker runs the rest"
)


def _flow_spec(spec: str) -> WarmTarget:
    """`module:attr=deployment-name` → WarmTarget (a one-line error naming the bad part)."""
    ref, sep, name = spec.partition("=")
    module_name, colon, attr = ref.partition(":")
    if not (sep and colon and module_name and attr and name):
        raise argparse.ArgumentTypeError(f"--flow must be module:flow=deployment-name (got {spec!r})")
    try:
        flow = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise argparse.ArgumentTypeError(f"--flow {spec!r}: cannot load {ref}: {exc}") from exc
    if not hasattr(flow, "to_deployment"):
        raise argparse.ArgumentTypeError(f"--flow {spec!r}: {ref} is not a Prefect flow")
    return WarmTarget.of(flow, name)


def _parameters(text: str) -> dict[str, object]:
    """`--parameters` → a JSON object (a one-line error otherwise)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--parameters is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--parameters must be a JSON object of the flow's parameters")
    return value


def catalogue_targets(names: Sequence[str], parameters: dict[str, object] | None = None) -> list[WarmTarget]:
    """The catalogue deployments named, with the options `flows.serve` gives them (none → refused);
    `parameters`: default parameters of each (the server checks them against the flow's schema)."""
    from flows import catalogue

    if not names:
        raise argparse.ArgumentTypeError(NO_NAMES)
    entries = {e.name: e for e in catalogue.entries()}
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown deployment(s) {', '.join(unknown)}; known: {', '.join(entries)}"
        )
    from flows.form import catalogue_services, with_service_choices

    extra = {"parameters": parameters} if parameters else {}
    services = catalogue_services()  # each form's `service` a choice of the catalogue's (flows/form.py)
    targets = []
    for n in names:
        target = WarmTarget.of(entries[n].flow, n, **(entries[n].deployment_options() | extra))
        targets.append(
            WarmTarget(flow=target.flow, deployment=with_service_choices(target.deployment, services))
        )
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.warm", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="catalogue deployments to run warm (required: e.g. respond)")
    parser.add_argument("--flow", action="append", default=[], metavar="MODULE:FLOW=NAME")
    parser.add_argument("--limit", type=int, default=8, help="runs at once, paused ones included (default 8)")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between polls (default 0.25)")
    parser.add_argument(
        "--no-events", action="store_true", help="poll only; no wake-up from the event stream"
    )
    parser.add_argument(
        "--parameters",
        type=_parameters,
        default=None,
        help="default parameters of the named deployments (JSON)",
    )
    parser.add_argument("--grace", type=float, default=30.0, help="seconds runs get to finish at stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    try:
        targets = [_flow_spec(spec) for spec in args.flow]
        if args.names or not targets:
            targets += catalogue_targets(args.names, args.parameters)
        runner = WarmRunner(
            targets, limit=args.limit, poll_s=args.poll, events=not args.no_events, grace_s=args.grace
        )
    except (argparse.ArgumentTypeError, NotWarmSafe, ValueError, SettingsError) as exc:
        print(f"flows.warm: {exc}", file=sys.stderr)
        return 2
    from runbook.store import refuse_outdated_schema

    if refuse_outdated_schema("flows.warm"):
        return 2
    runner.run()
    return 0
