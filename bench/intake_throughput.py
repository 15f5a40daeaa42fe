"""Bench 1: alerts per second accepted by `python -m intake`, on SQLite and on PostgreSQL.

Usage::

    python -m bench intake                                    # 2,000 requests, 16 concurrent, both stores
    python -m bench intake --requests 200 --concurrency 4 --stores sqlite
    python -m bench intake --client lean httpx --stores sqlite  # both load clients, side by side

    rows = run(Options(requests=40, concurrency=4))           # in code (tests/bench)
    print(report(rows))

What runs: a real `python -m intake --no-dispatch` process (uvicorn, 1 worker unless told otherwise)
on 127.0.0.1, started by the bench for each store and scenario on a fresh store (a new SQLite file;
a new database on one embedded PostgreSQL). `--no-dispatch`: what is measured is what the intake
accepts, i.e. the 202 after the durable commit (raw payload, alert, incident, outbox row); dispatch
to Prefect is paced separately (5 runs/s by default) and measured by the latency bench. The load
comes from this process, `concurrency` requests in flight on as many keep-alive connections, on the
same 2 cores: by default the lean client of bench/loadgen.py (pre-encoded requests on plain asyncio
connections, 15-25x less CPU per request than httpx, so the client does not bound the figures), or
httpx.AsyncClient (`--client httpx`) to exercise the intake with a general-purpose client. The report
gives each client's own CPU per request. With several clients each gets its own intake and store.

Scenarios, one Alertmanager webhook (version 4) with one firing alert per request:
- `distinct`: every alert its own fingerprint, so every request opens a new incident (+ outbox row);
- `storm`: one fingerprint for all, so the first opens the incident and the rest join it.
Before the measured requests, `warmup` requests (distinct, their own fingerprints) are sent and not
counted. After, the store is read to check what was kept: `distinct` → one incident per request,
`storm` → one incident whose alert count is the number of accepted requests.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import CLIENTS, Load, post_all
from bench.procs import BENCH_TOKEN, intake_process
from bench.stats import Summary, markdown_table

__all__ = [
    "CLIENTS",
    "SCENARIOS",
    "STORES",
    "Options",
    "ThroughputRow",
    "alertmanager_body",
    "count_stored",
    "postgres_server",
    "report",
    "run",
]

STORES = ("sqlite", "postgresql")
SCENARIOS = ("distinct", "storm")
_COLUMNS = "store|scenario|client|accepted / sent|alerts/s|p50 ms|p99 ms|max ms|client CPU ms/req|store check"


@dataclass(frozen=True)
class Options:
    requests: int = 2000
    concurrency: int = 16
    warmup: int = 50
    stores: tuple[str, ...] = STORES
    scenarios: tuple[str, ...] = SCENARIOS
    intake_workers: int = 1
    repeat: int = 1
    """Rounds; in each, for each scenario, the stores run back to back (load drift hits both alike)."""
    max_s: float = 300.0
    """No new request is sent after this many seconds of one scenario (the count is then lower)."""
    request_timeout_s: float = 30.0
    clients: tuple[str, ...] = ("lean",)
    """The load clients (bench/loadgen.py); with several, each runs after the other on a fresh store."""

    def __post_init__(self) -> None:
        if self.requests < 1 or self.concurrency < 1 or self.warmup < 0 or self.repeat < 1:
            raise ValueError("requests, concurrency and repeat must be >= 1, warmup >= 0")
        for store in self.stores:
            if store not in STORES:
                raise ValueError(f"unknown store {store!r}; known: {', '.join(STORES)}")
        for scenario in self.scenarios:
            if scenario not in SCENARIOS:
                raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        for client in self.clients:
            if client not in CLIENTS:
                raise ValueError(f"unknown client {client!r}; known: {', '.join(CLIENTS)}")


@dataclass
class ThroughputRow:
    store: str
    scenario: str
    round: int
    concurrency: int
    elapsed_s: float
    latencies_s: list[float]
    codes: Counter[int]
    incidents: int
    alerts_in_incident: int | None = None
    errors: list[str] = field(default_factory=list)
    client: str = "lean"
    client_cpu_s: float = 0.0
    """The bench process's CPU time during the measured load: what its client cost."""

    @property
    def sent(self) -> int:
        return sum(self.codes.values())

    @property
    def accepted(self) -> int:
        return self.codes.get(202, 0)

    @property
    def alerts_per_s(self) -> float:
        return self.accepted / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def latency(self) -> Summary:
        return Summary.of(self.latencies_s)

    @property
    def client_cpu_per_request_s(self) -> float:
        return self.client_cpu_s / self.sent if self.sent else 0.0

    @property
    def store_check(self) -> str:
        """What the store holds, against what it should hold after the scenario."""
        if self.scenario == "storm":
            ok = self.incidents == 1 and self.alerts_in_incident == self.accepted
            return f"{'ok' if ok else 'WRONG'}: 1 incident, {self.alerts_in_incident} alerts"
        ok = self.incidents == self.accepted
        return f"{'ok' if ok else 'WRONG'}: {self.incidents} incidents"

    def as_json(self) -> dict[str, Any]:
        lat = self.latency
        return {
            "store": self.store,
            "scenario": self.scenario,
            "client": self.client,
            "round": self.round,
            "sent": self.sent,
            "accepted": self.accepted,
            "codes": dict(self.codes),
            "concurrency": self.concurrency,
            "elapsed_s": self.elapsed_s,
            "alerts_per_s": self.alerts_per_s,
            "p50_ms": lat.median * 1000,
            "p99_ms": lat.p99 * 1000,
            "max_ms": lat.max * 1000,
            "client_cpu_ms_per_request": self.client_cpu_per_request_s * 1000,
            "store_check": self.store_check,
        }


def alertmanager_body(fingerprint: str, name: str, tag: str = "") -> bytes:
    """One Alertmanager (webhook version 4) group with one firing alert; `tag` goes in its summary."""
    labels = {
        "alertname": name,
        "service": "emotionscare",
        "severity": "critical",
        "job": "bench",
        "tag": tag,
    }
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{name} firing (bench {tag})"},
        "startsAt": "2026-11-26T13:08:45.828Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.monitoring:9090/graph",
        "fingerprint": fingerprint,
    }
    group = {
        "receiver": "incident-runbooks",
        "status": "firing",
        "alerts": [alert],
        "groupLabels": {"alertname": name},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.monitoring:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
    }
    return json.dumps(group).encode()


def _load(options: Options, client: str, url: str, bodies: list[bytes]) -> Load:
    """Send `bodies` with `options.concurrency` in flight, with `client`: timing, codes, errors, its CPU."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {BENCH_TOKEN}"}
    n, max_s, timeout_s = options.concurrency, options.max_s, options.request_timeout_s
    load = post_all(
        client, url, "/alerts/alertmanager", bodies, headers, concurrency=n, max_s=max_s, timeout_s=timeout_s
    )
    return asyncio.run(load)


def _scenario_bodies(scenario: str, n: int, tag: str) -> list[bytes]:
    if scenario == "storm":
        body = alertmanager_body(f"storm-{tag}", "BenchStorm", tag)
        return [body] * n
    return [alertmanager_body(f"distinct-{tag}-{i:06d}", f"BenchDistinct{i}", tag) for i in range(n)]


def count_stored(store_url: str, scenario: str, tag: str, limit: int) -> tuple[int, int | None]:
    """(incidents the measured requests opened, alerts in the storm's incident) as the store has them."""
    from runbook.store import open_store

    store = open_store(store_url)
    try:
        incidents = store.list_incidents(limit=limit)
    finally:
        store.close()
    # the incident's title is the alert's summary, which names the scenario's tag (its dedupe key is a
    # per-service hash: intake/services.py)
    if scenario == "storm":
        storm = [i for i in incidents if i.title == f"BenchStorm firing (bench {tag})"]
        return len(storm), (storm[0].alert_count if storm else None)
    return sum(i.title.endswith(f"firing (bench {tag})") for i in incidents), None


def _one(
    options: Options, store: str, scenario: str, rnd: int, client: str, store_url: str, workdir: Path
) -> ThroughputRow:
    tag = f"{store}-{scenario}-{rnd}-{client}"
    with intake_process(workdir, store_url, name=f"intake-{tag}", extra_args=_workers(options)) as (_, url):
        warm = _scenario_bodies("distinct", options.warmup, f"warmup-{tag}")
        if warm:
            _load(options, client, url, warm)
        load = _load(options, client, url, _scenario_bodies(scenario, options.requests, tag))
    incidents, alerts = count_stored(store_url, scenario, tag, limit=options.requests + options.warmup + 10)
    timing = (load.elapsed_s, load.latencies_s, load.codes)
    return ThroughputRow(
        store, scenario, rnd, options.concurrency, *timing, incidents, alerts, load.errors, client, load.cpu_s
    )


def _workers(options: Options) -> list[str]:
    return ["--workers", str(options.intake_workers)] if options.intake_workers > 1 else []


@contextmanager
def postgres_server(workdir: Path, postgres: Any | None) -> Iterator[Any]:
    if postgres is not None:
        yield postgres
        return
    from sandbox.postgres import EmbeddedPostgres

    pg = EmbeddedPostgres(data_dir=workdir / "pg")
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


def run(
    options: Options | None = None, *, postgres: Any | None = None, workdir: Path | None = None
) -> list[ThroughputRow]:
    """Every round x scenario x store x client, one after the other, each on a fresh store.

    `postgres`: a started `EmbeddedPostgres`."""
    options = options or Options()
    rows: list[ThroughputRow] = []
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="bench-intake-"))
            stack.callback(shutil.rmtree, workdir, True)
        pg = (
            stack.enter_context(postgres_server(workdir, postgres))
            if "postgresql" in options.stores
            else None
        )
        for rnd in range(options.repeat):
            for scenario in options.scenarios:
                for store in options.stores:
                    for client in options.clients:
                        if store == "sqlite":
                            store_url = (
                                f"sqlite:///{workdir / f'incidents-{scenario}-{rnd}-{client}.sqlite3'}"
                            )
                        else:
                            assert pg is not None  # started above whenever postgresql is asked for
                            store_url = pg.create_database(
                                f"bench_{scenario}_{rnd}_{client}_{int(time.time() * 1000) % 10**9}"
                            )
                        rows.append(_one(options, store, scenario, rnd, client, store_url, workdir))
    return rows


@dataclass(frozen=True)
class Aggregate:
    """The rounds of one store, scenario and client: alerts/s per round, latencies and CPU pooled."""

    store: str
    scenario: str
    client: str
    rows: tuple[ThroughputRow, ...]

    @property
    def rates(self) -> list[float]:
        return [r.alerts_per_s for r in self.rows]

    @property
    def rate(self) -> float:
        return Summary.of(self.rates).median

    @property
    def latency(self) -> Summary:
        return Summary.of([x for r in self.rows for x in r.latencies_s])

    @property
    def client_cpu_ms(self) -> float:
        """The client's CPU per request sent, ms."""
        return 1000 * sum(r.client_cpu_s for r in self.rows) / max(1, sum(r.sent for r in self.rows))

    def rate_text(self) -> str:
        if len(self.rows) == 1:
            return f"{self.rate:.1f}"
        return f"{self.rate:.1f} ({min(self.rates):.0f}–{max(self.rates):.0f})"

    def check_text(self) -> str:
        wrong = [r.store_check for r in self.rows if not r.store_check.startswith("ok")]
        if wrong:
            return wrong[0]
        return self.rows[-1].store_check + (f" (each of {len(self.rows)})" if len(self.rows) > 1 else "")


def aggregate(rows: list[ThroughputRow]) -> list[Aggregate]:
    """One Aggregate per store, scenario and client, in STORES x SCENARIOS x CLIENTS order."""
    keys = sorted(
        {(r.store, r.scenario, r.client) for r in rows},
        key=lambda k: (STORES.index(k[0]), SCENARIOS.index(k[1]), CLIENTS.index(k[2])),
    )
    return [Aggregate(*k, tuple(r for r in rows if (r.store, r.scenario, r.client) == k)) for k in keys]


def report(rows: list[ThroughputRow], options: Options | None = None) -> str:
    """The table, then the ratios (PostgreSQL / SQLite per scenario, storm / distinct per store, per client;
    lean / httpx per store and scenario)."""
    options = options or Options()
    groups = aggregate(rows)
    table = markdown_table(
        _COLUMNS.split("|"),
        [
            [
                g.store,
                g.scenario,
                g.client,
                f"{sum(r.accepted for r in g.rows)} / {sum(r.sent for r in g.rows)}",
                g.rate_text(),
                g.latency.median * 1000,
                g.latency.p99 * 1000,
                g.latency.max * 1000,
                f"{g.client_cpu_ms:.3f}",
                g.check_text(),
            ]
            for g in groups
        ],
    )
    by = {(g.store, g.scenario, g.client): g for g in groups}
    ratios = []
    for client in CLIENTS:
        for scenario in SCENARIOS:
            a, b = by.get(("postgresql", scenario, client)), by.get(("sqlite", scenario, client))
            if a and b and b.rate:
                ratios.append(f"- {scenario}, {client}: PostgreSQL / SQLite = {_ratios(a, b)}")
        for store in STORES:
            a, b = by.get((store, "storm", client)), by.get((store, "distinct", client))
            if a and b and b.rate:
                ratios.append(f"- {store}, {client}: storm / distinct = {a.rate / b.rate:.2f}x alerts/s")
    for store in STORES:
        for scenario in SCENARIOS:
            a, b = by.get((store, scenario, "lean")), by.get((store, scenario, "httpx"))
            if a and b and b.rate:
                cpu = f", client CPU {a.client_cpu_ms / b.client_cpu_ms:.2f}x" if b.client_cpu_ms else ""
                ratios.append(f"- {store} {scenario}: lean / httpx = {_ratios(a, b)}{cpu}")
    errors = [f"- {r.store}/{r.scenario}/{r.client}/round {r.round}: {e}" for r in rows for e in r.errors[:3]]
    rounds = f", {options.repeat} rounds (alerts/s: median (min–max) of the rounds; latencies pooled)"
    parts = [
        f"Intake throughput: {options.requests} requests per scenario (+{options.warmup} warm-up), "
        f"{options.concurrency} concurrent, client {' and '.join(options.clients)}, "
        f"intake workers {options.intake_workers}, --no-dispatch" + (rounds if options.repeat > 1 else ""),
        "",
        table,
    ]
    if ratios:
        parts += ["", "Ratios:", *ratios]
    if errors:
        parts += ["", "Errors (first 3 per scenario, client and round):", *errors]
    return "\n".join(parts)


def _ratios(a: Aggregate, b: Aggregate) -> str:
    return (
        f"{a.rate / b.rate:.2f}x alerts/s, "
        f"p50 {a.latency.median / b.latency.median:.2f}x, p99 {a.latency.p99 / b.latency.p99:.2f}x"
    )
