"""The process's settings, service catalogue and incident store, built on first use (never at import),
reset for tests; and which service the current run works on (its *binding*).

Usage::

    from tasks import runtime
    with runtime.bound("payments"):          # or runtime.bind("payments"): for the rest of this flow run
        s = runtime.settings()               # the settings as payments sees them (its Deployment, URLs, ...)
        runtime.service()                    # payments' catalogue entry (runbook.catalogue.Service)
    runtime.catalogue()                      # RUNBOOK_CATALOGUE's file, else the settings as a catalogue of one
    runtime.base_settings()                  # the process settings, no service overlaid
    st = runtime.store()                     # runbook.store.open_store(s.store.url), once per process
    runtime.reset()                          # forget everything cached (tests change the environment)
    runtime.logger("tasks.slack").warning(...)   # the flow run's logger, else the named one

Flows never take settings or secrets as parameters (parameters are stored on the Prefect server and
shown in the UI); they read them here, inside the worker process.

The binding. Every runbook, `respond`, the diagnoses and the post-mortem open their incident with
`flows.record.Record.open`, which binds the incident's service *for that flow run* (`bind`); drills bind
the service they are given. From then on `settings()` returns that service's view of the settings
(runbook/catalogue/overlay.py): the ~50 places that read a target through `settings()` get the incident's
service, never the process-wide one. How a binding is found, most specific first:

1. a `with bound(name):` entered in this same flow run (or, outside any flow, in this context);
2. the current flow run's binding (`bind(name)` inside a flow run): kept per flow run id, so a subflow
   binding its own service never changes its parent's, and tasks and our threads see it wherever the
   flow run's context goes (Prefect's ThreadPoolTaskRunner copies the context into its threads;
   flows/background.py copies it into the status-update and escalation threads);
3. a `with bound(name):` entered around this flow run (a test, or a parent flow).

With nothing bound: the settings as they are when the catalogue is the settings' own service (today's
single-service setup, unchanged); that one service's view when the catalogue file has one; and when it
has several, settings whose service, Kubernetes, database and external-API groups raise `NoServiceBound`
when read: nothing ever falls back to "the first service" for a probe, a Kubernetes call or a query.
A service bound that the catalogue does not know (an alert for an uncatalogued service) reads the same
way (`UnknownService`): the shared parts (store, Slack token, the default PagerDuty key and contacts)
work, no target does.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from runbook.catalogue.overlay import NoServiceBound

if TYPE_CHECKING:
    from runbook.catalogue import Catalogue, Service
    from runbook.settings import Settings
    from runbook.store import Store

__all__ = [
    "NoServiceBound",
    "UnknownService",
    "base_settings",
    "bind",
    "bound",
    "bound_name",
    "catalogue",
    "logger",
    "reset",
    "service",
    "settings",
    "store",
]


class UnknownService(NoServiceBound):
    """The bound service (the incident's) is not in the catalogue: there is no target to act on."""


_lock = threading.Lock()
_settings: Settings | None = None
_catalogue: Catalogue | None = None
_views: dict[str, Settings] = {}
_store: Store | None = None

_RUNS_KEPT = 10_000
_by_run: OrderedDict[str, str] = OrderedDict()  # flow run id → the service it is bound to
_explicit: ContextVar[tuple[str | None, str] | None] = ContextVar("runbook_service", default=None)


def base_settings() -> Settings:
    """The process settings (`runbook.settings.load_settings()`), loaded once; no service overlaid."""
    global _settings
    with _lock:
        if _settings is None:
            from runbook.settings import load_settings

            _settings = load_settings()
        return _settings


def catalogue() -> Catalogue:
    """The service catalogue, loaded and validated once: `RUNBOOK_CATALOGUE`'s file, else the settings as a
    catalogue of one. An invalid file raises `runbook.catalogue.CatalogueError` (a SettingsError)."""
    global _catalogue
    base = base_settings()
    with _lock:
        if _catalogue is None:
            from runbook.catalogue import load_catalogue

            _catalogue = load_catalogue(base)
        return _catalogue


# --- the binding ----------------------------------------------------------------------------------------


def _flow_run_id() -> str | None:
    if "prefect.context" not in sys.modules:  # Prefect not even imported: no flow run here
        return None
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else None


def bound_name() -> str | None:
    """The name of the service bound here (the module docstring's order), None when nothing is."""
    run = _flow_run_id()
    explicit = _explicit.get()
    if explicit is not None and explicit[0] == run:
        return explicit[1]
    if run is not None:
        with _lock:
            name = _by_run.get(run)
        if name is not None:
            return name
    return explicit[1] if explicit is not None else None


def bind(name: str) -> Service | None:
    """Bind service `name` for the rest of the current flow run (outside a flow: the current context).

    Returns its catalogue entry, or None when the catalogue does not know it (then nothing is a target:
    `service()` raises UnknownService, `settings()` refuses its service groups)."""
    found = catalogue().find(name)
    key = found.name if found is not None else name
    run = _flow_run_id()
    if run is None:
        _explicit.set((None, key))
    else:
        with _lock:
            _by_run[run] = key
            _by_run.move_to_end(run)
            while len(_by_run) > _RUNS_KEPT:
                _by_run.popitem(last=False)
    return found


@contextmanager
def bound(name: str) -> Iterator[Service | None]:
    """Bind service `name` inside the block only (its catalogue entry, or None when unknown)."""
    found = catalogue().find(name)
    token = _explicit.set((_flow_run_id(), found.name if found is not None else name))
    try:
        yield found
    finally:
        _explicit.reset(token)


def service() -> Service:
    """The bound service's catalogue entry; with nothing bound, the catalogue's only service.

    Raises UnknownService (the bound name is not catalogued) or NoServiceBound (several services, none
    bound): a probe or a Kubernetes call never guesses its target."""
    cat = catalogue()
    name = bound_name()
    if name is None:
        if len(cat.services) == 1:
            return cat.services[0]
        raise NoServiceBound(
            f"no service bound, and the catalogue has {len(cat.services)} ({', '.join(cat.names)}): "
            "the incident names the service to act on"
        )
    found = cat.find(name)
    if found is None:
        raise UnknownService(f"service {name!r} is not in the catalogue (known: {', '.join(cat.names)})")
    return found


def settings() -> Settings:
    """The settings as the bound service sees them (runbook/catalogue/overlay.py); see the module docstring
    for what is returned when nothing, or an uncatalogued service, is bound."""
    from runbook.catalogue.overlay import settings_for, unbound

    base = base_settings()
    cat = catalogue()
    name = bound_name()
    if name is None and len(cat.services) == 1:
        name = cat.services[0].name
    if name is None:
        why = f"the catalogue has {len(cat.services)} services ({', '.join(cat.names)}) and none is bound"
        return _view("", lambda: unbound(base, why))
    found = cat.find(name)
    if found is None:
        why = f"service {name!r} is not in the catalogue (known: {', '.join(cat.names)})"
        return _view(f"?{name}", lambda: unbound(base, why))
    if base.catalogue is None:
        return base  # the settings' own service: the settings themselves, exactly as before catalogues
    return _view(found.name, lambda: settings_for(base, found))


def _view(key: str, build: Callable[[], Settings]) -> Settings:
    with _lock:
        view = _views.get(key)
    if view is None:
        view = build()
        with _lock:
            view = _views.setdefault(key, view)
    return view


# --- the store, reset, logging ----------------------------------------------------------------------------


def store() -> Store:
    global _store
    current = base_settings()
    with _lock:
        if _store is None:
            from runbook.store import open_store

            _store = open_store(current.store.url)
        return _store


def reset() -> None:
    """Forget the cached settings, catalogue, views, bindings and store (closing the store and the
    clients), e.g. after the environment changed."""
    global _settings, _store, _catalogue
    with _lock:
        old, _store, _settings, _catalogue = _store, None, None, None
        _views.clear()
        _by_run.clear()
    close = getattr(old, "close", None)
    if callable(close):
        close()
    try:
        from tasks.clients import close_clients
    except ImportError:  # pragma: no cover - clients is part of this package
        return
    close_clients()


def logger(name: str) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The Prefect run logger when called inside a flow or task run (its lines reach the UI), else `name`'s."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(name)
