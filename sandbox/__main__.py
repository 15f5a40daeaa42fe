"""`python -m sandbox`: run the sandbox world, or act on a running one from another shell.

Usage::

    python -m sandbox up [--port-base 8100] [--traffic 2] [--var var] [--services many|one]
    python -m sandbox fault bad-deploy [--ago 20] [--mode crash] [--service payments]
    python -m sandbox fault api-down hume [--mode 5xx]
    python -m sandbox fault error-rate 8
    python -m sandbox clear [db-down] [--service NAME]   # every fault (the world healthy), or lift one
    python -m sandbox status [--json]          # per service: cluster API, namespace, Deployment, faults
    python -m sandbox faults                   # the faults, their arguments and what each does

`up` starts the world of three services (emotionscare and payments on cluster east, search on cluster
west; `--services one`: emotionscare alone). A fault acts on `--service NAME` (default: the first,
emotionscare); one that needs a database or external APIs is refused on a service without them.
`status --json` prints the world's status; its `services` object holds, per service, its cluster's API
URL, namespace, Deployment, health URLs and the faults still in force (one a rollback or a person
undid is not listed).

It prints what it starts and when each part is ready, then the `RUNBOOK_*` lines that point the
runbooks at the world (also written to `var/sandbox.env`, with a kubeconfig in `var/kubeconfig`), and
runs until Ctrl-C or SIGTERM, when it stops every thread, server and the PostgreSQL process and frees
every port. The other commands find the running world's control API in `var/sandbox.env` (or
`--control URL`, or `$SANDBOX_CONTROL_URL`) and print what changed. Errors are one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from sandbox.control import CONTROL_VAR, ENV_FILE, control_url, read_env_file
from sandbox.faults import FAULTS, FaultArgError, UnknownFault, parse_cli

EXIT_USAGE = 2
PORT_SPAN = 13  # the highest offset of sandbox.world.PORT_OFFSETS (not imported: `up` alone loads the world)


class CliError(Exception):
    """One line for stderr, exit 2."""


def _say(message: str) -> None:
    print(f"[sandbox {time.strftime('%H:%M:%S')}] {message}", flush=True)


def up(args: argparse.Namespace) -> int:
    from sandbox.control import ControlServer
    from sandbox.private_files import private_dir, write_private
    from sandbox.world import World

    var = private_dir(Path(args.var))  # its env file and kubeconfig hold the sandbox's credentials
    env_file = var / "sandbox.env"
    running = control_url(env_file)
    if running is not None:
        raise CliError(f"a sandbox is already running (control API {running}); stop it first")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # the service's own logs tell the story

    data_dir = var / "sandbox"
    if data_dir.exists():
        import shutil

        shutil.rmtree(data_dir)  # a fresh world each time: no state left from an earlier run
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    started = time.monotonic()
    _say(
        f"starting the sandbox world in {data_dir} on 127.0.0.1"
        + (f", ports from {args.port_base}" if args.port_base else "")
    )
    world = World(
        data_dir=data_dir.resolve(),
        services=args.services,
        port_base=args.port_base,
        pod_start_delay_s=args.pod_start_delay_s,
        tick_interval_s=0.2,
        sync_interval_s=0.5,
        step_interval_s=args.step_interval_s,
        traffic_rate_per_s=args.traffic,
    )
    control: ControlServer | None = None
    try:
        try:
            world.start(on_progress=_say)
            control = ControlServer(world).start(port=world.port_for("control"))
        except (RuntimeError, OSError) as exc:
            raise CliError(f"cannot start the sandbox: {exc}") from exc
        _say(f"control API ready: {control.url} (python -m sandbox fault|clear|status)")
        kube = write_private(var / "kubeconfig", world.kubeconfig_path.read_text())
        env = {**world.settings_env(), CONTROL_VAR: control.url}
        write_private(  # its tokens and credentials: readable by the owner only
            env_file,
            "# written by `python -m sandbox up`; removed when it stops\n"
            + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()),
        )
        _say(f"ready in {time.monotonic() - started:.1f}s; kubectl: export KUBECONFIG={kube.resolve()}")
        _say(f"settings for the runbooks (also in {env_file}: `source {env_file}`):")
        for key, value in env.items():
            print(f"{key}={value}", flush=True)
        print(flush=True)
        for key, value in env.items():
            print(f"export {key}={shlex.quote(value)}", flush=True)
        _say("running; Ctrl-C stops everything")
        stop.wait()
        _say("stopping the world")
    finally:
        if control is not None:
            control.stop()
        world.stop()
        env_file.unlink(missing_ok=True)
    _say("stopped: every server and PostgreSQL down, every port freed")
    return 0


def _control(args: argparse.Namespace) -> str:
    if args.control:
        return str(args.control).rstrip("/")
    url = control_url(Path(args.var) / "sandbox.env")
    if url is None:
        where = read_env_file(Path(args.var) / "sandbox.env").get(CONTROL_VAR)
        hint = f" (nothing answers at {where})" if where else ""
        raise CliError(f"no sandbox is running{hint}; start one with `python -m sandbox up`")
    return url


def _call(
    args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    url = _control(args) + path
    try:
        response = httpx.request(method, url, json=body, timeout=60)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the sandbox at {url}: {type(exc).__name__}: {exc}") from exc
    try:
        data = response.json()
    except ValueError as exc:
        raise CliError(f"{method} {url}: HTTP {response.status_code}, not JSON") from exc
    if response.status_code >= 400:
        raise CliError(str(data.get("error") or data))
    return dict(data)


def _print_status(status: dict[str, Any]) -> None:
    dep = status["deployment"]
    svc = status["service"]
    print(
        f"  deployment {dep['name']}: {dep['image']} (revision {dep['revision']}), {dep['ready']}/{dep['replicas']} ready"
    )
    print(
        f"  service {svc['url']}: {'listening' if svc['listening'] else 'refusing connections'}; postgres {status['postgres']}"
    )
    apis = ", ".join(f"{k} {v}" for k, v in status["apis"].items())
    print(f"  external APIs: {apis}")
    faults = ", ".join(status["faults"]) or "none"
    print(f"  active faults: {faults}")
    services = status.get("services") or {}
    if len(services) > 1:
        for name, one in services.items():
            held = ", ".join(f["name"] for f in one["active_faults"]) or "none"
            print(
                f"  {name}: {one['cluster']} {one['api_url']} {one['namespace']}/{one['deployment']} "
                f"{one['image']} {one['ready']}/{one['replicas']} ready; faults: {held}"
            )


def fault(args: argparse.Namespace, rest: list[str]) -> int:
    if args.name == "clear":
        return clear(args)
    try:
        body = parse_cli(args.name, rest)
    except (UnknownFault, FaultArgError) as exc:
        raise CliError(str(exc)) from exc
    if args.service:
        body["service"] = args.service
    data = _call(args, "POST", f"/faults/{args.name}", body)
    where = f" on {args.service}" if args.service else ""
    print(f"{args.name}{where}: {data['message']}")
    _print_status(data["status"])
    return 0


def clear(args: argparse.Namespace) -> int:
    name = getattr(args, "name", None)
    if name and name != "clear" and name not in FAULTS:
        raise CliError(f"unknown fault {name!r}; valid: {', '.join(FAULTS)}")
    path = f"/clear/{name}" if name and name != "clear" else "/clear"
    service = getattr(args, "service", None)
    if service:
        path += "?" + urlencode({"service": service})
    data = _call(args, "POST", path)
    print(data["message"])
    _print_status(data["status"])
    return 0


def status(args: argparse.Namespace) -> int:
    data = _call(args, "GET", "/status")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print_status(data)
    return 0


def list_faults() -> int:
    for f in FAULTS.values():
        params = " ".join(
            (p.name.upper() if p.positional else f"[{p.option} {p.name.upper()}]")
            if p.kind is not bool
            else f"[{p.option}]"
            for p in f.params
        )
        print(f"{f.name} {params}".rstrip())
        print(f"    {f.summary}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description=(__doc__ or "").splitlines()[0], allow_abbrev=False
    )
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument(
        "--control", help="control API URL of the running sandbox (default: from VAR/sandbox.env)"
    )
    common.add_argument(
        "--var", default=str(ENV_FILE.parent), help="folder of sandbox.env and kubeconfig (var)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser(
        "up", allow_abbrev=False, parents=[common], help="start the world and run until Ctrl-C"
    )
    p_up.add_argument(
        "--port-base", type=int, default=None, help=f"listen on N.. N+{PORT_SPAN} instead of free ports"
    )
    p_up.add_argument(
        "--services",
        choices=("many", "one"),
        default="many",
        help="many: emotionscare, payments (cluster east), search (cluster west); one: emotionscare",
    )
    p_up.add_argument("--traffic", type=float, default=2.0, help="synthetic requests per second (0: none)")
    p_up.add_argument("--pod-start-delay-s", type=float, default=1.0)
    p_up.add_argument("--step-interval-s", type=float, default=1.0, help="memory/CPU step interval")
    p_fault = sub.add_parser(
        "fault", allow_abbrev=False, parents=[common], help="inject a fault: fault NAME [ARG] [--option V]"
    )
    p_fault.add_argument("name")
    p_fault.add_argument("--service", help="the service it acts on (default: the first, emotionscare)")
    p_clear = sub.add_parser(
        "clear", allow_abbrev=False, parents=[common], help="remove every fault, or lift one: clear [NAME]"
    )
    p_clear.add_argument("name", nargs="?")
    p_clear.add_argument("--service", help="only this service's faults (default: every service's)")
    p_status = sub.add_parser(
        "status", allow_abbrev=False, parents=[common], help="what is live, which faults are active"
    )
    p_status.add_argument("--json", action="store_true")
    sub.add_parser("faults", allow_abbrev=False, help="list the faults and their arguments")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if rest and args.command != "fault":
            raise CliError(f"unexpected argument(s): {' '.join(rest)}")
        if args.command == "up":
            if args.port_base is not None and not 1024 <= args.port_base <= 65535 - PORT_SPAN:
                raise CliError(
                    f"--port-base must be between 1024 and {65535 - PORT_SPAN} (got {args.port_base})"
                )
            if args.traffic < 0:
                raise CliError(f"--traffic must be >= 0 (got {args.traffic})")
            return up(args)
        if args.command == "fault":
            return fault(args, rest)
        if args.command == "clear":
            return clear(args)
        if args.command == "status":
            return status(args)
        return list_faults()
    except CliError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
