"""Property-based fuzz of every route over real HTTP: never a 5xx, and the store holds exactly what got a 202.

Two suites:

- `test_no_route_answers_5xx_to_anything_a_client_sends`: random bytes, random JSON and recorded payloads
  with random parts replaced, to any route (and an unknown one), with valid, wrong or no credentials,
  random content types and Sentry resources.
- `test_hostile_bodies_per_route` (one per source): the recorded payloads of that source, correctly
  authenticated (so the body reaches the decoder and the parsers), carrying the classes of input that
  used to give a 500 or a 503 after a partial write: `NaN`/`Infinity` literals, `1e999`, integers of
  thousands of digits, deep nesting, invalid UTF-8 (a lone byte, an encoded surrogate, an overlong NUL),
  a byte-order mark, duplicate keys, and strings with NUL (`\\u0000`) or lone surrogates (`\\ud800`)
  wherever a string may go, plus long names. After every request the store is counted (raw payloads,
  alerts, incidents, outbox rows): a 202 adds exactly what its receipt says, anything else adds nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.app import create_app
from intake.auth import sentry_signature
from intake.config import IntakeConfig
from intake.ingest import StoreIngestor
from intake.outbox import Outbox

DATA = Path(__file__).resolve().parents[1] / "data"
SOURCES = ["alertmanager", "sentry", "grafana", "generic"]
TOKENS = {"alertmanager": "am-token", "grafana": "gf-token", "generic": "gen-token"}
SENTRY_SECRET = "sentry-client-secret"
ALLOWED = {202, 400, 401, 404, 405, 413, 415, 422}
SENTRY_RESOURCES = {
    "sentry_event_alert.json": "event_alert",
    "sentry_issue_resolved.json": "issue",
    "sentry_metric_alert_critical.json": "metric_alert",
    "sentry_metric_alert_resolved.json": "metric_alert",
}

header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
RECORDED = [json.loads(p.read_bytes()) for p in sorted(DATA.glob("*.json"))]
FIELD_NAMES = sorted(
    {
        key
        for doc in RECORDED
        for key in json.dumps(doc).replace('"', " ").split()
        if key.isidentifier() and len(key) < 30
    }
)


def sentry_headers(body: bytes, resource: str | None) -> dict[str, str]:
    """Signed as Sentry signs, with a fresh timestamp and a new Request-ID."""
    headers = {
        "Content-Type": "application/json",
        "Sentry-Hook-Signature": sentry_signature(SENTRY_SECRET, body),
        "Sentry-Hook-Timestamp": str(int(time.time())),
        "Request-ID": str(uuid.uuid4()),
    }
    if resource is not None:
        headers["Sentry-Hook-Resource"] = resource
    return headers


def _mutate(doc: Any, path: list[int], replacement: Any) -> Any:
    """Replace the node reached by following `path` (indices into dict items / list entries)."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return replacement
    step, rest = path[0], path[1:]
    if isinstance(doc, dict):
        key = list(doc)[step % len(doc)]
        return {**doc, key: _mutate(doc[key], rest, replacement)}
    index = step % len(doc)
    return [*doc[:index], _mutate(doc[index], rest, replacement), *doc[index + 1 :]]


mutated_payloads = st.builds(
    _mutate,
    st.sampled_from(RECORDED),
    st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=5),
    json_values | st.sampled_from(FIELD_NAMES),
)
bodies = st.one_of(
    st.binary(max_size=512),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated_payloads.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=6).map(
        lambda v: json.dumps(v).encode()
    ),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes]:
    source = draw(st.sampled_from([*SOURCES, "nagios"]))
    body = draw(bodies)
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]))
    headers: dict[str, str] = {}
    content_type = draw(
        st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", None])
        | header_text
    )
    if content_type is not None:
        headers["Content-Type"] = content_type
    auth = draw(st.sampled_from(["valid", "wrong", "none", "garbage"]))
    if source == "sentry":
        headers["Sentry-Hook-Timestamp"] = str(int(time.time()))
        if auth == "valid":
            headers["Sentry-Hook-Signature"] = sentry_signature(SENTRY_SECRET, body)
        elif auth != "none":
            headers["Sentry-Hook-Signature"] = draw(header_text)
        resource = draw(
            st.sampled_from(["event_alert", "metric_alert", "issue", "installation", None]) | header_text
        )
        if resource is not None:
            headers["Sentry-Hook-Resource"] = resource
    elif auth == "valid":
        headers["Authorization"] = f"Bearer {TOKENS.get(source, 'x')}"
    elif auth == "wrong":
        headers["Authorization"] = ("Bearer " + draw(header_text)).strip()
    elif auth == "garbage":
        headers["Authorization"] = draw(header_text)
    return method, source, headers, body


def test_no_route_answers_5xx_to_anything_a_client_sends(
    intake_config: IntakeConfig, store: Any, outbox: Outbox, serve: Any
) -> None:
    app = create_app(intake_config, StoreIngestor(store, outbox, intake_config))
    seen: dict[int, int] = {}

    with serve(app) as url, httpx.Client(base_url=url, timeout=30.0) as client:

        @settings(
            max_examples=300,
            deadline=None,
            derandomize=True,  # the same examples every run: deterministic, still broad
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(requests())
        def check(request: tuple[str, str, dict[str, str], bytes]) -> None:
            method, source, headers, body = request
            answer = client.request(method, f"/alerts/{source}", content=body, headers=headers)
            seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
            assert answer.status_code in ALLOWED, (answer.status_code, answer.text, request)
            if answer.status_code != 202 and method == "POST" and source != "nagios":
                assert "error" in answer.json()

        check()

        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200

    # The fuzz reached past the gate: some requests were parsed and refused, some accepted.
    assert seen.get(422, 0) > 0 and seen.get(401, 0) > 0 and seen.get(415, 0) > 0, seen


# --- hostile bodies, one suite per route ----------------------------------------------------------------

HOLE = "@@hole@@"
RAW_TOKENS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e400",
    "9" * 5000,  # over Python's 4,300-digit limit for int()
    "1" + "0" * 400,  # a big integer Python does read
    "[" * 5000 + "]" * 5000,  # deeper than the decoder's recursion limit
    "[" * 60 + "]" * 60,
    '{"a":' * 300 + "1" + "}" * 300,
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\u0000"',
    '"x\\u0000y"',
    "1E+2",
    "-0",
]
BAD_BYTES = [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\x00"]
hostile_strings = st.one_of(
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "\ud83d", "\U0001f600", "\u202e", "", " "]),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=12),
    st.builds(
        lambda word, n: word * n, st.sampled_from(["service", "db", "x", "down "]), st.integers(1, 2000)
    ),
)
hostile_values = st.one_of(
    hostile_strings,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.dictionaries(hostile_strings, hostile_strings, max_size=3),
    st.lists(hostile_strings, max_size=3),
    st.just(HOLE),
)


def _recorded(source: str) -> list[tuple[Any, str | None]]:
    """The source's recorded payloads (decoded) with the Sentry resource each is sent as."""
    return [
        (json.loads(path.read_bytes()), SENTRY_RESOURCES.get(path.name))
        for path in sorted(DATA.glob(f"{source}_*.json"))
    ]


def _splice(body: bytes, data: st.DataObject) -> bytes:
    """Put a raw token where the placeholder is, or corrupt the bytes, or duplicate a key."""
    if HOLE.encode() in body:
        token = data.draw(st.sampled_from(RAW_TOKENS), label="raw token")
        return body.replace(f'"{HOLE}"'.encode(), token.encode(), 1)
    how = data.draw(st.sampled_from(["as is", "bad bytes", "bom", "dup first", "dup last"]), label="how")
    if how == "bad bytes":
        inside = [i + 4 for i in range(len(body)) if body[i : i + 4] == b'": "']
        at = data.draw(st.sampled_from(inside), label="at") if inside else len(body) // 2
        return body[:at] + data.draw(st.sampled_from(BAD_BYTES), label="bytes") + body[at:]
    if how == "bom":
        return b"\xef\xbb\xbf" + body
    doc = json.loads(body)
    if how.startswith("dup") and isinstance(doc, dict) and doc:
        key = data.draw(st.sampled_from(sorted(doc)), label="key")
        value = json.dumps(data.draw(hostile_values, label="dup value")).encode()
        pair = json.dumps(key).encode() + b": " + value
        return b"{" + pair + b", " + body[1:] if how == "dup first" else body[:-1] + b", " + pair + b"}"
    return body


class StoreCount:
    """Raw payloads, alerts, incidents and outbox rows in the store, counted the same way every time."""

    def __init__(self, store: Any, outbox: Outbox, store_url: str) -> None:
        self.store, self.outbox = store, outbox
        assert store_url.startswith("sqlite:///")
        self.path = store_url.removeprefix("sqlite:///")

    def __call__(self) -> tuple[int, int, int, int]:
        # The store has no listing of raw payloads, so they are counted in its table.
        with sqlite3.connect(self.path) as db:
            (raw,) = db.execute("SELECT count(*) FROM raw_payloads").fetchone()
        alerts = len(self.store.list_alerts(limit=1_000_000))
        incidents = len(self.store.list_incidents(limit=1_000_000))
        return raw, alerts, incidents, self.outbox.depth()


def _headers(source: str, body: bytes, resource: str | None) -> dict[str, str]:
    if source == "sentry":
        return sentry_headers(body, resource)
    return {"Content-Type": "application/json", "Authorization": f"Bearer {TOKENS[source]}"}


@pytest.mark.parametrize("source", SOURCES)
def test_hostile_bodies_per_route(
    source: str, intake_config: IntakeConfig, store: Any, outbox: Outbox, store_url: str, serve: Any
) -> None:
    app = create_app(intake_config, StoreIngestor(store, outbox, intake_config))
    count = StoreCount(store, outbox, store_url)
    recorded = _recorded(source)
    seen: dict[int, int] = {}

    with serve(app) as url, httpx.Client(base_url=url, timeout=30.0) as client:

        @settings(
            max_examples=120,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(st.data())
        def check(data: st.DataObject) -> None:
            doc, resource = data.draw(st.sampled_from(recorded), label="recorded")
            path = data.draw(st.lists(st.integers(0, 50), min_size=1, max_size=5), label="path")
            changed = _mutate(doc, path, data.draw(hostile_values, label="value"))
            body = _splice(json.dumps(changed).encode(), data)
            before = count()
            answer = client.post(f"/alerts/{source}", content=body, headers=_headers(source, body, resource))
            seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
            assert answer.status_code in ALLOWED - {404, 405, 415}, (
                answer.status_code,
                answer.text,
                body[:300],
            )
            after = count()
            if answer.status_code != 202:
                assert "error" in answer.json()
                assert after == before, ("a refused request left rows", answer.text, body[:300])
                return
            receipt = answer.json()
            created = len(receipt["incidents_created"])
            expected = (
                before[0] + 1,
                before[1] + receipt["accepted"],
                before[2] + created,
                before[3] + created,
            )
            assert after == expected, ("the store holds other than the receipt says", receipt, body[:300])

        check()

    # The suite reached all three outcomes on this route.
    assert seen.get(202, 0) > 0 and seen.get(400, 0) > 0 and seen.get(422, 0) > 0, seen


def test_the_refusals_name_what_is_wrong(client: httpx.Client, store: Any, outbox: Outbox) -> None:
    """One request per class, the answer and its reason (the table in docs/intake.md)."""
    group = json.loads((DATA / "alertmanager_group_3_firing_1_resolved.json").read_bytes())
    cases: list[tuple[Callable[[dict[str, Any]], bytes], int, str]] = [
        (lambda d: json.dumps(d).encode().replace(b'"version": "4"', b'"version": NaN'), 400, "NaN"),
        (
            lambda d: json.dumps(d).encode().replace(b'"version": "4"', b'"version": 1e999'),
            400,
            "out of range",
        ),
        (
            lambda d: json.dumps(d).encode().replace(b'"version": "4"', b'"version": ' + b"9" * 5000),
            400,
            "digits",
        ),
        (lambda d: b'{"alerts": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400, "nested too deeply"),
        (lambda d: json.dumps(d).encode().replace(b'"firing"', b'"fir\xffing"', 1), 400, "not UTF-8"),
        (
            lambda d: json.dumps(
                {**d, "alerts": [d["alerts"][0], {**d["alerts"][1], "labels": {"x": "\x00"}}]}
            ).encode(),
            422,
            "alerts[1].labels['x']: contains a NUL character",
        ),
        (
            lambda d: json.dumps(
                {**d, "alerts": [{**d["alerts"][0], "annotations": {"s": "\ud800"}}]}
            ).encode(),
            422,
            "alerts[0].annotations['s']: contains a lone UTF-16 surrogate",
        ),
        (lambda d: json.dumps({**d, "alerts": [{}] * 1001}).encode(), 422, "1001 alerts in one request"),
    ]
    headers = {"Content-Type": "application/json", "Authorization": "Bearer am-token"}
    for make, status, reason in cases:
        answer = client.post("/alerts/alertmanager", content=make(group), headers=headers)
        assert (answer.status_code, reason in answer.json()["error"]) == (status, True), answer.text
    assert store.list_alerts() == [] and outbox.depth() == 0
