"""Run chosen deployments' flow runs inside this process, in worker threads: no Python process per run.

Usage::

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.warm          # what flows.serve serves
    python -m flows.warm service-down database-lost --limit 4 --poll 0.2
    python -m flows.warm --flow bench.standin:respond=warm                  # any flow, deployment "warm"

    runner = WarmRunner([WarmTarget.of(respond, "respond")], limit=8, poll_s=0.25)
    with runner:                # registers the deployments, then polls in a background thread
        runner.wait_ready(30)
    runner.run()                # or block in the calling thread until SIGTERM/SIGINT or stop()

Why: `flow.serve()` and workers start a new Python process per run, and that start (importing
Prefect and the flow, ~1 s here) is most of the 1.5 s from an alert to the flow's first line
(docs/latency.md). This runner keeps the interpreter warm and does what the child process would do,
in a thread. It follows `prefect.runner` (3.9.1) step by step, minus the process:

1. register each deployment (`RunnerDeployment.aapply()`, as `flows.serve` does; same names, so
   intake, the UI and `run_deployment` find them) and keep deployment id → flow object;
2. find due runs of those deployments, at once when the server's event stream (`/api/events/out`,
   the websocket Prefect's own cancellation observer uses) announces a run of ours Scheduled (the
   event arrives 10-25 ms after the run is created), and otherwise every `events_poll_s` (stream
   connected) or `poll_s` (stream down, or `events=False`). Every `ready_every_s` the query is the
   Runner's own (`POST /deployments/get_scheduled_flow_runs`, which also marks the deployments ready
   in the UI, a write); in between it is a read-only `POST /flow_runs/filter` with the same filter,
   so frequent polls do not take SQLite's write lock from run creations (which then answer 503);
3. claim a run by proposing `Pending` (Scheduled → Pending), as `ScheduledRunPoller._submit_run` does.
   The server's orchestration accepts one such proposal; any other runner's is answered with an abort,
   so a run is executed once however many warm runners or `flows.serve` processes watch it;
4. run it in a thread with `prefect.flow_engine.run_flow(flow, flow_run=flow_run)`, the call
   `python -m prefect.engine` makes in the child: the engine proposes Running, runs the flow, proposes
   its final state; its logs go to the API through Prefect's log handler, as usual.

One module (about 550 lines) because it is one thing: the runner. Its steps share one state (the
slots, the event stream, the claimed runs, the stop) on one event loop; the command line is the last
60 lines.

Bounded: at most `limit` runs at once (a run is claimed only when a slot is free; a run paused for a
person keeps its slot, as its process would under `flows.serve`); a failing poll backs off up to
`max_backoff_s`. Clean stop (`stop()`, SIGTERM, SIGINT): nothing new is claimed,
runs in flight get `grace_s` to finish, any still running then are reported Crashed (their threads
end with the process), and logs and events are flushed to the API.

Cancellation: a run cancelled before it is claimed never starts (the server refuses the claim). A run
already executing cannot be stopped from outside, because a thread cannot be killed: it runs to its
end. That, and isolation (a flow that leaks memory, changes the environment or crashes the
interpreter takes the runner with it), is what the process start bought. Use this runner for the
deployments that must start fast (`respond`), and `flows.serve` or a worker for the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import datetime
import importlib
import logging
import math
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from runbook.errors import SettingsError

__all__ = ["WarmRunner", "WarmTarget", "claim", "main"]

log = logging.getLogger("flows.warm")


@dataclass(frozen=True)
class WarmTarget:
    """One deployment this runner executes: the flow object and the deployment it is registered as."""

    flow: Any
    deployment: Any

    @classmethod
    def of(cls, flow: Any, name: str, **deployment: Any) -> WarmTarget:
        """`flow.to_deployment(name=name, **deployment)` (call outside an event loop)."""
        if getattr(flow, "isgenerator", False):
            raise ValueError(f"flow {flow.name!r}: generator flows are not supported by the warm runner")
        return cls(flow=flow, deployment=flow.to_deployment(name=name, **deployment))

    @property
    def name(self) -> str:
        return f"{self.flow.name}/{self.deployment.name}"


async def claim(client: Any, flow_run: Any) -> Any | None:
    """Propose `Pending` for a scheduled run; the accepted state, or None if another runner has it.

    Step 3 of the module docstring: the server accepts Scheduled → Pending once and aborts the rest.
    """
    from prefect.exceptions import Abort, ObjectNotFound
    from prefect.states import Pending
    from prefect.utilities.engine import propose_state

    try:
        state = await propose_state(client, Pending(), flow_run_id=flow_run.id)
    except Abort as exc:
        log.debug("flow run %s is not ours: %s", flow_run.id, exc)
        return None
    except ObjectNotFound:
        log.debug("flow run %s was deleted before it was claimed", flow_run.id)
        return None
    return state if state.is_pending() else None


class WarmRunner:
    """Polls, claims and runs flow runs of `targets` in this process. See the module docstring."""

    def __init__(
        self,
        targets: Sequence[WarmTarget],
        *,
        limit: int = 8,
        poll_s: float = 0.25,
        events: bool = True,
        events_poll_s: float = 2.0,
        ready_every_s: float = 10.0,
        prefetch_s: float = 10.0,
        grace_s: float = 30.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        if not targets:
            raise ValueError("WarmRunner needs at least one deployment to run")
        if limit < 1:
            raise ValueError(f"limit must be at least 1 (got {limit})")
        if min(poll_s, events_poll_s, ready_every_s) <= 0 or grace_s < 0 or prefetch_s < 0:
            raise ValueError("poll_s, events_poll_s, ready_every_s must be > 0; grace_s, prefetch_s >= 0")
        self.targets = list(targets)
        self.limit = limit
        self.poll_s = poll_s
        self.events = events
        self.events_poll_s = events_poll_s
        self.ready_every_s = ready_every_s
        self._marked_ready_at = -math.inf
        self.events_connected = False
        """True while the event stream is connected (wakes are then immediate)."""
        self.prefetch_s = prefetch_s
        self.grace_s = grace_s
        self.max_backoff_s = max_backoff_s
        self.deployment_ids: dict[UUID, WarmTarget] = {}
        self.executed: deque[UUID] = deque(maxlen=1000)
        """The last flow runs this runner executed (claimed and ran), in start order."""
        self.runs_executed = 0
        self.claims_lost = 0
        """Claims the server refused: the run was another runner's (or no longer Scheduled)."""
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._claiming: set[UUID] = set()
        self._running: dict[UUID, tuple[threading.Thread, Any]] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._context = contextvars.copy_context()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Run in a background thread (idempotent). The Prefect settings of the caller apply."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=self._context.copy().run, args=(self._thread_main,), name="warm-runner", daemon=True
        )
        self._thread.start()

    def run(self) -> None:
        """Run in the calling thread until `stop()`, SIGTERM or SIGINT."""
        self._context = contextvars.copy_context()
        self._thread_main()
        if self.error is not None:
            raise self.error

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop claiming, let runs in flight finish (up to `grace_s`), then return (thread-safe)."""
        self._stopping.set()
        self._poke()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s if timeout_s is not None else self.grace_s + 30)
            if self._thread.is_alive():
                log.error("warm runner did not stop in time")

    def wait_ready(self, timeout_s: float) -> bool:
        """True once the deployments are registered and the first poll is due (False on timeout)."""
        return self._ready.wait(timeout_s)

    def __enter__(self) -> WarmRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._running) + len(self._claiming)

    def _poke(self) -> None:
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop closed between the check and the call
                log.debug("warm runner loop already closed")

    # -- the loop ----------------------------------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # recorded and logged: the caller sees it in .error / run()
            self.error = exc
            log.exception("warm runner stopped on an error")
        finally:
            self._flush()

    async def _main(self) -> None:
        from prefect.client.orchestration import get_client

        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._on_signal, sig)
        async with get_client() as client:
            for target in self.targets:
                deployment_id = await target.deployment.aapply()
                self.deployment_ids[deployment_id] = target
            await asyncio.to_thread(self._prewarm)
            watcher = asyncio.create_task(self._watch_events()) if self.events else None
            names = ", ".join(sorted(t.name for t in self.targets))
            log.info(
                "warm runner ready: %d deployment(s) (%s), limit %d, poll %g s, events %s",
                len(self.targets),
                names,
                self.limit,
                self.poll_s,
                f"on (poll {self.events_poll_s:g} s while connected)" if self.events else "off",
            )
            self._ready.set()
            failures = 0
            try:
                while not self._stopping.is_set():
                    try:
                        await self._poll(client)
                        failures = 0
                    except Exception as exc:  # server unreachable or 5xx: back off, keep polling
                        failures += 1
                        log.warning("warm runner: poll failed (%d in a row): %s", failures, exc)
                    interval = self.events_poll_s if self.events_connected else self.poll_s
                    await self._idle(self._backoff(failures) if failures else interval)
            finally:
                if watcher is not None:
                    watcher.cancel()
                    await asyncio.gather(watcher, return_exceptions=True)
                await self._drain(client)
                log.info(
                    "warm runner stopped: %d run(s) executed, %d claim(s) lost to other runners",
                    self.runs_executed,
                    self.claims_lost,
                )

    def _backoff(self, failures: int) -> float:
        return float(min(self.max_backoff_s, self.poll_s * 2 ** min(failures, 10)))

    def _prewarm(self) -> None:
        """Import and connect now what the first run would otherwise do on its time (engines, client)."""
        import prefect.flow_engine
        import prefect.task_engine  # noqa: F401
        from prefect.context import SyncClientContext

        with SyncClientContext():  # also checks the server's API version, once per process
            pass

    async def _watch_events(self) -> None:
        """Wake the poll as soon as the server announces a run of ours Scheduled (step 2, no wait)."""
        from prefect.events.clients import get_events_subscriber
        from prefect.events.filters import EventFilter, EventNameFilter

        names = [f"prefect.flow-run.{state}" for state in ("Scheduled", "AwaitingRetry", "Resuming", "Late")]
        ours = {f"prefect.deployment.{deployment_id}" for deployment_id in self.deployment_ids}
        failures = 0
        while not self._stopping.is_set():
            try:
                async with get_events_subscriber(
                    filter=EventFilter(event=EventNameFilter(name=names)), reconnection_attempts=2
                ) as stream:
                    self.events_connected = True
                    failures = 0
                    if self._wake is not None:
                        self._wake.set()  # look now for what was scheduled while not connected
                    async for event in stream:
                        if any(related.id in ours for related in event.related) and self._wake is not None:
                            self._wake.set()
            except Exception as exc:  # the stream is down: polling carries on; reconnect with backoff
                failures += 1
                log.warning("warm runner: event stream lost (%d in a row), polling only: %s", failures, exc)
            finally:
                self.events_connected = False
            await asyncio.sleep(self._backoff(failures + 2))

    def _on_signal(self, sig: int) -> None:
        log.info("warm runner: %s, stopping", signal.Signals(sig).name)
        self._stopping.set()
        if self._wake is not None:
            self._wake.set()

    async def _idle(self, wait_s: float) -> None:
        wake = self._wake
        if wake is None:  # only `run()` calls this, after making the event; a bare sleep otherwise
            await asyncio.sleep(wait_s)
            return
        try:
            await asyncio.wait_for(wake.wait(), timeout=wait_s)
        except TimeoutError:
            pass  # the poll interval ended
        wake.clear()

    async def _poll(self, client: Any) -> None:
        free = self.limit - self.in_flight
        if free <= 0:
            return
        runs = await self._due_runs(client)
        for flow_run in runs:  # earliest first (the server sorts by next scheduled start)
            if free <= 0 or self._stopping.is_set():
                break
            with self._lock:
                if flow_run.id in self._claiming or flow_run.id in self._running:
                    continue
                self._claiming.add(flow_run.id)
            free -= 1
            task = asyncio.create_task(self._claim_and_start(client, flow_run))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _due_runs(self, client: Any) -> list[Any]:
        """Scheduled runs of our deployments due before now + `prefetch_s`, earliest first (step 2)."""
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterDeploymentId,
            FlowRunFilterNextScheduledStartTime,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.sorting import FlowRunSort

        before = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self.prefetch_s)
        ids = list(self.deployment_ids)
        if time.monotonic() - self._marked_ready_at >= self.ready_every_s:
            runs: list[Any] = await client.get_scheduled_flow_runs_for_deployments(
                deployment_ids=ids, scheduled_before=before
            )
            self._marked_ready_at = time.monotonic()
            return runs
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=ids),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(before_=before),
            ),
            sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC,
            limit=50,
        )
        return runs

    async def _claim_and_start(self, client: Any, flow_run: Any) -> None:
        started = False
        try:
            state = await claim(client, flow_run)  # may wait for a run scheduled a little ahead
            if state is None:
                self.claims_lost += 1
            if state is None or self._stopping.is_set():
                if state is not None:  # claimed while stopping: hand it back for another runner
                    await self._release(client, flow_run)
                return
            flow_run.state = state
            self._start_thread(flow_run)
            started = True
        except Exception:
            log.exception("warm runner: could not claim flow run %s", flow_run.id)
        finally:
            with self._lock:
                self._claiming.discard(flow_run.id)
            if not started:
                self._poke()

    async def _release(self, client: Any, flow_run: Any) -> None:
        from prefect.states import Scheduled

        try:
            await client.set_flow_run_state(flow_run.id, Scheduled(), force=True)
        except Exception:
            log.exception("warm runner: could not hand flow run %s back; it stays Pending", flow_run.id)

    def _start_thread(self, flow_run: Any) -> None:
        target = self.deployment_ids[flow_run.deployment_id]
        thread = threading.Thread(
            target=self._context.copy().run,
            args=(self._execute, target.flow, flow_run),
            name=f"warm-run-{flow_run.name}",
            daemon=True,  # a run still going when the process exits was reported Crashed by _drain
        )
        with self._lock:
            self._running[flow_run.id] = (thread, flow_run)
            self.executed.append(flow_run.id)
            self.runs_executed += 1
        thread.start()

    def _execute(self, flow: Any, flow_run: Any) -> None:
        """Step 4, in a worker thread: what `python -m prefect.engine <id>` does after loading the flow."""
        from prefect.exceptions import Abort, Pause
        from prefect.flow_engine import flow_run_logger, run_flow

        run_logger = cast(logging.Logger, flow_run_logger(flow_run, flow))  # as prefect.engine passes it
        try:
            outcome = run_flow(flow, flow_run=flow_run, return_type="state", error_logger=run_logger)
            if asyncio.iscoroutine(outcome):  # an async flow: its own event loop in this thread
                outcome = asyncio.run(outcome)
            log.info(
                "flow run %s (%s) ended: %s", flow_run.id, flow_run.name, getattr(outcome, "name", outcome)
            )
        except (Abort, Pause) as exc:  # the server aborted it, or it paused/suspended: its state says so
            log.info("flow run %s left the runner: %s", flow_run.id, exc)
        except BaseException as exc:  # as when the child process exits non-zero: make sure it ends Crashed
            log.exception("flow run %s crashed in the warm runner", flow_run.id)
            self._report_crashed(
                flow_run, f"the flow run crashed in the warm runner: {type(exc).__name__}: {exc}"
            )
        finally:
            with self._lock:
                self._running.pop(flow_run.id, None)
            self._poke()  # a slot is free

    def _report_crashed(self, flow_run: Any, message: str) -> None:
        """Propose Crashed unless the run already ended (the engine reports most crashes itself).

        What `FlowRunExecutor` does when a run's process exits non-zero: an error before the engine
        started (a parameter that does not fit the flow, say) would otherwise leave the run Pending.
        """
        from prefect.client.orchestration import get_client
        from prefect.exceptions import Abort
        from prefect.states import Crashed
        from prefect.utilities.engine import propose_state_sync

        try:
            with get_client(sync_client=True) as client:
                current = client.read_flow_run(flow_run.id).state
                if current is None or not current.is_final():
                    propose_state_sync(client, Crashed(message=message[:2000]), flow_run_id=flow_run.id)
        except Abort:
            log.debug("flow run %s: the server refused Crashed (it has moved on)", flow_run.id)
        except Exception:
            log.exception("warm runner: could not report flow run %s as crashed", flow_run.id)

    async def _drain(self, client: Any) -> None:
        from prefect.states import Crashed

        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.grace_s)
        deadline = time.monotonic() + self.grace_s
        while self._running_ids() and time.monotonic() < deadline:
            await self._idle(min(0.1, max(0.0, deadline - time.monotonic())))
        for flow_run_id in self._running_ids():
            message = f"the warm runner stopped while the run was executing (grace {self.grace_s:g} s)"
            log.error("flow run %s: %s", flow_run_id, message)
            try:
                await client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)
            except Exception:
                log.exception("warm runner: could not report flow run %s as crashed", flow_run_id)

    def _running_ids(self) -> list[UUID]:
        with self._lock:
            return list(self._running)

    def _flush(self) -> None:
        """Send what the runs logged and emitted before the process goes (both are batched)."""
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        for service in (APILogWorker, EventsWorker):
            try:
                service.drain_all(timeout=5)
            except Exception:
                log.exception("warm runner: could not flush %s", service.__name__)


# -- the command line ------------------------------------------------------------------------------


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


def _catalogue_targets(names: Sequence[str]) -> list[WarmTarget]:
    """The deployments `flows.serve` serves (all, or those named), with the same options."""
    from flows import catalogue
    from flows.form import catalogue_services

    entries = {e.name: e for e in catalogue.entries()}
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown deployment(s) {', '.join(unknown)}; known: {', '.join(entries)}"
        )
    services = catalogue_services()  # each form's `service` a choice of the catalogue's (flows/form.py)
    targets = []
    for entry in (entries[n] for n in names) if names else entries.values():
        targets.append(WarmTarget(flow=entry.flow, deployment=entry.to_deployment(services)))
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.warm", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="catalogue deployments to run (default: all of flows.serve)")
    parser.add_argument("--flow", action="append", default=[], metavar="MODULE:FLOW=NAME")
    parser.add_argument("--limit", type=int, default=8, help="runs at once, paused ones included (default 8)")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between polls (default 0.25)")
    parser.add_argument(
        "--no-events", action="store_true", help="poll only; no wake-up from the event stream"
    )
    parser.add_argument("--grace", type=float, default=30.0, help="seconds runs get to finish at stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    try:
        targets = [_flow_spec(spec) for spec in args.flow]
        if args.names or not targets:
            targets += _catalogue_targets(args.names)
        runner = WarmRunner(
            targets, limit=args.limit, poll_s=args.poll, events=not args.no_events, grace_s=args.grace
        )
    except (argparse.ArgumentTypeError, ValueError, SettingsError) as exc:
        print(f"flows.warm: {exc}", file=sys.stderr)
        return 2
    from runbook.store import refuse_outdated_schema

    if refuse_outdated_schema("flows.warm"):
        return 2
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
