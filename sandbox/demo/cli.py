"""`python -m sandbox.demo`: read the settings, check the ports, start everything, play the incident,
and stop every process it started (Ctrl-C or SIGTERM), checking that every port is free again."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import sandbox.demo
from sandbox.demo.incident import play_incident
from sandbox.demo.system import SANDBOX_PORTS, Demo, DemoError, Ports, print_ready, say, start_all
from sandbox.private_files import private_dir
from sandbox.supervise import StartFailed, Supervisor, port_free, wait_port_closed

__all__ = ["main"]


class Stop(Exception):
    """Ctrl-C or SIGTERM: stop everything."""


def _check_ports(ports: Ports) -> None:
    for port, setting in ports.all().items():
        if not port_free(port):
            raise DemoError(
                f"port {port} on 127.0.0.1 is in use (another `make demo` still running?); "
                f"stop it, or move the demo with {setting}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.demo", description=(sandbox.demo.__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--no-incident", action="store_true", help="start everything, play no incident")
    parser.add_argument("--once", action="store_true", help="stop after the incident (or once ready)")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds to wait for the all-clear")
    args = parser.parse_args(argv)
    from flows.automations import load_crash_detection_settings
    from runbook.errors import SettingsError
    from runbook.settings import load_settings
    from sandbox.demo.settings import load_demo_settings

    try:
        settings = load_settings()
        demo_settings = load_demo_settings()
        crash_detection = load_crash_detection_settings()
        ports = Ports(demo_settings.prefect_port, settings.intake.port, demo_settings.sandbox_port_base)
        if settings.intake.port == 0:
            raise DemoError("RUNBOOK_INTAKE_PORT: the demo needs a fixed port (got 0)")
        _check_ports(ports)
    except (SettingsError, DemoError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    root = Path.cwd()
    var = demo_settings.var if demo_settings.var.is_absolute() else root / demo_settings.var
    if var.exists():
        shutil.rmtree(var)  # a fresh start: no run, incident or world left from last time
    private_dir(var)  # its env file and logs hold the intake token and the stand-ins' credentials
    demo = Demo(
        root=root,
        var=var,
        ports=ports,
        prefect_db=demo_settings.prefect_db,
        crash_detection=crash_detection,
        respond_parameters={
            "stability_window_s": demo_settings.stability_window_s,
            "runbook_options": {"settle_s": demo_settings.settle_s},
        },
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        raise Stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    code = 0
    sup = Supervisor(var / "logs", say=say)
    try:
        start_all(sup, demo)
        print_ready(demo, started)
        if not args.no_incident:
            ok = play_incident(demo, stop, args.deadline)
            code = 0 if ok else 1
        if not args.once:
            say("running; start runbooks and drills from the UI. Ctrl-C stops everything")
            while not stop.is_set():
                stop.wait(1)
    except Stop as exc:
        say(f"{exc}: stopping")
    except StartFailed as exc:
        say(f"✗ {exc}")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sup.stop_all()
        demo.stop_database()  # after the server that used it
        busy = [p for p in ports.all() if not wait_port_closed(p, timeout_s=10)]
        if busy:
            say(f"✗ still listening after the stop: ports {', '.join(map(str, busy))}")
            code = code or 1
        else:
            say(
                f"stopped: every process ended, ports {ports.prefect}, {ports.intake} and "
                f"{ports.sandbox_base}-{ports.sandbox_base + SANDBOX_PORTS - 1} free"
            )
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code


if __name__ == "__main__":
    sys.exit(main())
