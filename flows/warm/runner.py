"""The warm runner's loop: poll, claim and run flow runs of its deployments in this process's threads.

Usage::

    runner = WarmRunner([WarmTarget.of(respond, "respond")], limit=8, poll_s=0.25)
    with runner:                # registers the deployments, then polls in a background thread
        runner.wait_ready(30)
    runner.run()                # or block in the calling thread until SIGTERM/SIGINT or stop()

It follows `prefect.runner` (3.9.1) step by step, minus the process (flows/warm/__init__.py):
1. register each deployment (`RunnerDeployment.aapply()`) and keep deployment id → flow;
2. find due runs (flows/warm/claiming.py `due_runs`), at once when the server's event stream
   (`/api/events/out`) announces a run of ours Scheduled, otherwise every `events_poll_s` (stream
   connected) or `poll_s` (stream down, or `events=False`); the Runner's own query every
   `ready_every_s` (it marks the deployments ready in the UI), a read-only one in between;
3. claim a run by proposing `Pending` (`claim`): one runner wins, the others are refused;
4. run it in a thread (flows/warm/execution.py `execute`).

Bounded: at most `limit` runs at once (a run is claimed only when a slot is free; a run paused for a
person keeps its slot, as its process would under `flows.serve`); a failing poll backs off up to
`max_backoff_s`. Clean stop (`stop()`, SIGTERM, SIGINT): nothing new is claimed, runs in flight get
`grace_s` to finish, any still running then are reported Crashed (their threads end with the
process), and logs and events are flushed to the API.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from flows.warm.claiming import claim, due_runs
from flows.warm.execution import execute, flush, prewarm
from flows.warm.targets import WarmTarget

__all__ = ["WarmRunner"]

log = logging.getLogger("flows.warm")


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
            flush()

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
            await asyncio.to_thread(prewarm)
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
        mark_ready = time.monotonic() - self._marked_ready_at >= self.ready_every_s
        runs = await due_runs(
            client, list(self.deployment_ids), prefetch_s=self.prefetch_s, mark_ready=mark_ready
        )
        if mark_ready:
            self._marked_ready_at = time.monotonic()
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
        """Step 4, in a worker thread; frees the slot when the run ends, however it ends."""
        try:
            execute(flow, flow_run)
        finally:
            with self._lock:
                self._running.pop(flow_run.id, None)
            self._poke()  # a slot is free

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
