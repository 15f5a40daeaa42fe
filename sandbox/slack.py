"""A Slack Web API stand-in: the methods the runbooks call, answered as Slack answers them.

Usage::

    slack = SlackStandIn(token="xoxb-sandbox", channels=("incidents", "alerts-critical")).start()
    httpx.post(f"{slack.url}/api/chat.postMessage",
               headers={"Authorization": "Bearer xoxb-sandbox"},
               json={"channel": "#incidents", "text": "P1: service down"})
    # -> {"ok": true, "channel": "C0...", "ts": "1700000000.000100", "message": {...}}
    slack.messages("incidents")                   # top-level messages, oldest first
    slack.thread("incidents", ts)                 # parent + replies (posted with thread_ts)
    slack.add_reaction_as_user("incidents", ts, "eyes", "U0ALICE")   # a person acknowledging
    slack.fail_next(2, "http_500")                # the next 2 calls answer HTTP 500
    slack.fail_next(1, "ok_false", error="internal_error")
    slack.fail_next(1, "rate_limited", retry_after_s=1)   # HTTP 429 + Retry-After, error "ratelimited"
    slack.fail_next(1, "timeout", delay_s=5)      # answers after 5 s: a client timeout
    held = slack.hold_next("chat.postMessage", landed=True)   # the next post is stored, its answer held
    held.reached.wait(5); ...; held.release()     # (the test kills its sender meanwhile)

Methods (POST or GET, `https://slack.com/api/METHOD` shape): `chat.postMessage`, `chat.update`,
`reactions.add`, `reactions.get`, `conversations.replies`, `conversations.history`,
`conversations.list`, `auth.test`.
Arguments come as JSON (`application/json`, token only in the `Authorization: Bearer` header, as Slack
requires), as form fields (`application/x-www-form-urlencoded`, token in the header or a `token`
field) or as query parameters. Errors are HTTP 200 with `{"ok": false, "error": CODE}`: `not_authed`
(no token), `invalid_auth` (wrong token), `channel_not_found`, `no_text`, `message_not_found`,
`thread_not_found`, `already_reacted`, `invalid_name`, `no_item_specified`; an unknown method is
HTTP 404 `unknown_method`. A reply whose `thread_ts` names no message is posted top-level, as Slack
does. `ts` values are unique and increase (microsecond steps from the clock).

Message metadata, as Slack has it: `chat.postMessage` takes `metadata` (`{"event_type": str,
"event_payload": object}`, a JSON string in a form post); malformed is `invalid_metadata_format`, over
the size limit `metadata_too_large`. The message in `chat.postMessage`'s answer carries it;
`conversations.history` and `conversations.replies` return it only with `include_all_metadata=true`.

`hold_next(method, landed=...)` makes the next call of `method` hang until `release()` (or the server
stops): with `landed=True` the call is carried out first and only its answer held (the sender dies
after Slack had it); with `landed=False` it is never carried out (the sender dies before). Tests use it
to make a kill land between a message's claim and its answer, deterministically.

Why one module past 400 lines: it is one stand-in, the Slack Web API; its methods share the channel and
message store, the auth and the argument parsing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from sandbox.holds import HeldCalls, Hold
from sandbox.httpserver import HttpError, Request, Response, StandIn

__all__ = ["SlackStandIn", "channel_id_for"]

SlackFault = Literal["http_500", "ok_false", "timeout", "rate_limited"]

_METHODS = (
    "chat.postMessage",
    "chat.update",
    "reactions.add",
    "reactions.get",
    "conversations.replies",
    "conversations.history",
    "conversations.list",
    "auth.test",
)
_EMOJI_NAME = re.compile(r"^[a-z0-9_+'-]{1,100}$")
_TS = re.compile(r"^\d{1,12}\.\d{6}$")
_TEAM_ID = "T0SANDBOX1"
_BOT_USER_ID = "U0RUNBOOK1"
_BOT_ID = "B0RUNBOOK1"
_APP_ID = "A0RUNBOOK1"
_METADATA_MAX_BYTES = 8000  # Slack's documented limit on a message's metadata is of this order


def channel_id_for(name: str) -> str:
    """A stable Slack-looking channel ID for a channel name (`C0` + 9 upper-case characters)."""
    digest = hashlib.sha256(name.encode()).hexdigest().upper()
    return "C0" + digest[:9]


class SlackStandIn(StandIn):
    """Slack Web API over HTTP, with channels, threads and reactions kept in memory."""

    name = "slack"

    def __init__(
        self,
        token: str = "xoxb-sandbox-token",
        channels: Iterable[str] = ("incidents", "alerts-critical", "alerts", "devops", "general"),
        clock: Callable[[], float] = time.time,
        team: str = "sandbox",
        bot_name: str = "incident-runbooks",
    ) -> None:
        super().__init__()
        self.token = token
        self.clock = clock
        """Seconds since the epoch; `ts` values derive from it (settable, e.g. a fixed value in tests)."""
        self.team = team
        self.bot_name = bot_name
        self._initial_channels = tuple(c.lstrip("#") for c in channels)
        self._lock = threading.RLock()
        self._channels: dict[str, str] = {}  # id -> name
        self._messages: dict[str, list[dict[str, Any]]] = {}  # channel id -> messages in ts order
        self._last_ts_us = 0
        self.holds = HeldCalls()
        self._reset_state()
        for method in _METHODS:
            for verb in ("GET", "POST"):
                self.server.route(verb, f"/api/{method}", self._endpoint(method))
        self.server.route("GET", "/api/{method}", self._unknown_method)
        self.server.route("POST", "/api/{method}", self._unknown_method)

    # -- state helpers (in-process, for tests, the demo and drills) --------------------------------
    def _reset_state(self) -> None:
        self.holds.release_all()
        with self._lock:
            self._channels = {channel_id_for(name): name for name in self._initial_channels}
            self._messages = {cid: [] for cid in self._channels}
            self._last_ts_us = 0

    def add_channel(self, name: str) -> str:
        """Create a channel (idempotent); returns its ID."""
        name = name.lstrip("#")
        cid = channel_id_for(name)
        with self._lock:
            self._channels.setdefault(cid, name)
            self._messages.setdefault(cid, [])
        return cid

    def channel_id(self, channel: str) -> str:
        """The ID of a channel given as `#name`, `name` or ID; KeyError if there is none."""
        cid = self._resolve_channel(channel)
        if cid is None:
            raise KeyError(f"no Slack channel {channel!r}")
        return cid

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Top-level messages of a channel (replies excluded), oldest first (copies)."""
        cid = self.channel_id(channel)
        with self._lock:
            return [_public(m) for m in self._messages[cid] if m.get("thread_ts") in (None, m["ts"])]

    def all_messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message of a channel, replies included, in `ts` order (copies)."""
        cid = self.channel_id(channel)
        with self._lock:
            return [_public(m) for m in self._messages[cid]]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The parent message `ts` followed by its replies, oldest first; [] if no such message."""
        cid = self.channel_id(channel)
        with self._lock:
            return [_public(m) for m in self._thread_of(cid, ts)]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        cid = self.channel_id(channel)
        with self._lock:
            found = self._find(cid, ts)
            return _public(found) if found is not None else None

    def reactions(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """`[{"name", "users", "count"}]` on one message ([] if none or no such message)."""
        found = self.message(channel, ts)
        return list(found.get("reactions", [])) if found else []

    def add_reaction_as_user(self, channel: str, ts: str, name: str, user: str) -> None:
        """A person reacts to a message (e.g. `:eyes:` to acknowledge); KeyError if no such message."""
        cid = self.channel_id(channel)
        with self._lock:
            found = self._find(cid, ts)
            if found is None:
                raise KeyError(f"no message {ts} in {channel}")
            _add_reaction(found, name.strip(":"), user)

    def post_as_user(self, channel: str, text: str, user: str, thread_ts: str | None = None) -> str:
        """A person posts (e.g. replies "ack" in the incident thread); returns the message `ts`."""
        cid = self.channel_id(channel)
        with self._lock:
            return self._post(cid, {"text": text, "thread_ts": thread_ts}, user=user, bot=False)["ts"]

    # -- fault controls -----------------------------------------------------------------------------
    def fail_next(
        self,
        count: int = 1,
        kind: SlackFault = "http_500",
        *,
        error: str = "internal_error",
        delay_s: float = 30.0,
        retry_after_s: int = 1,
    ) -> None:
        """The next `count` API calls fail: HTTP 500, `ok: false` with `error`, a `delay_s` wait
        (a client timeout), or HTTP 429 `ratelimited` with `Retry-After: retry_after_s`."""
        if kind == "http_500":
            self.server.inject(count, Response.text("Internal Server Error", status=500))
        elif kind == "ok_false":
            self.server.inject(count, Response.json({"ok": False, "error": error}))
        elif kind == "timeout":
            self.server.inject(count, delay_s=delay_s)
        elif kind == "rate_limited":
            self.server.inject(
                count,
                Response.json(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": str(retry_after_s)},
                ),
            )
        else:
            raise ValueError(f"unknown Slack fault {kind!r} (http_500, ok_false, timeout, rate_limited)")

    def hold_next(self, method: str = "chat.postMessage", *, landed: bool = True) -> Hold:
        """The next call of `method` hangs until `release()` or `stop()`: carried out first when `landed`
        (only its answer is held), never carried out otherwise (see the module docstring)."""
        if method not in _METHODS:
            raise ValueError(f"unknown Slack method {method!r}")
        return self.holds.add(method, landed=landed)

    def stop(self) -> None:
        self.holds.release_all()
        super().stop()

    # -- HTTP ---------------------------------------------------------------------------------------
    def _endpoint(self, method: str) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            try:
                args, token = _arguments(request)
            except HttpError:
                return _error("invalid_form_data")
            if token is None:
                return _error("not_authed")
            if not hmac.compare_digest(token.encode(), self.token.encode()):
                return _error("invalid_auth")
            hold = self.holds.take(method)
            if hold is not None and not hold.landed:
                hold.wait()
                return Response.json({"ok": False, "error": "service_unavailable"}, status=503)
            answer: Response = getattr(self, "_m_" + method.replace(".", "_"))(args)
            if hold is not None:
                hold.wait()
            return answer

        return handle

    def _unknown_method(self, request: Request) -> Response:
        return Response.json(
            {"ok": False, "error": "unknown_method", "req_method": request.params["method"]}, status=404
        )

    def _m_auth_test(self, args: dict[str, Any]) -> Response:
        return _ok(
            url=f"https://{self.team}.slack.com/",
            team=self.team,
            user=self.bot_name,
            team_id=_TEAM_ID,
            user_id=_BOT_USER_ID,
            bot_id=_BOT_ID,
            is_enterprise_install=False,
        )

    def _m_chat_postMessage(self, args: dict[str, Any]) -> Response:
        cid = self._resolve_channel(_str(args.get("channel")))
        if cid is None:
            return _error("channel_not_found")
        if not _has_content(args):
            return _error("no_text")
        if len(_str(args.get("text"))) > 40000:
            return _error("msg_too_long")
        metadata, problem = _metadata(args.get("metadata"))
        if problem:
            return _error(problem)
        if metadata is not None:
            args = {**args, "metadata": metadata}
        with self._lock:
            message = self._post(cid, args, user=_BOT_USER_ID, bot=True)
        return _ok(channel=cid, ts=message["ts"], message=_public(message))

    def _m_chat_update(self, args: dict[str, Any]) -> Response:
        cid = self._resolve_channel(_str(args.get("channel")))
        if cid is None:
            return _error("channel_not_found")
        ts = _str(args.get("ts"))
        if not _has_content(args):
            return _error("no_text")
        with self._lock:
            found = self._find(cid, ts)
            if found is None:
                return _error("message_not_found")
            if found.get("user") != _BOT_USER_ID:
                return _error("cant_update_message")
            for key in ("text", "blocks", "attachments"):
                if key in args:
                    found[key] = _maybe_json(args[key])
            found["edited"] = {"user": _BOT_USER_ID, "ts": self._next_ts()}
            message = _public(found)
        return _ok(channel=cid, ts=ts, text=message.get("text", ""), message=message)

    def _m_reactions_add(self, args: dict[str, Any]) -> Response:
        channel, ts, name = _str(args.get("channel")), _str(args.get("timestamp")), _str(args.get("name"))
        if not channel or not ts:
            return _error("no_item_specified")
        cid = self._resolve_channel(channel)
        if cid is None:
            return _error("channel_not_found")
        if not _TS.match(ts):
            return _error("bad_timestamp")
        name = name.strip(":")
        if not _EMOJI_NAME.match(name):
            return _error("invalid_name")
        with self._lock:
            found = self._find(cid, ts)
            if found is None:
                return _error("message_not_found")
            if not _add_reaction(found, name, _BOT_USER_ID):
                return _error("already_reacted")
        return _ok()

    def _m_reactions_get(self, args: dict[str, Any]) -> Response:
        channel, ts = _str(args.get("channel")), _str(args.get("timestamp"))
        if not channel or not ts:
            return _error("no_item_specified")
        cid = self._resolve_channel(channel)
        if cid is None:
            return _error("channel_not_found")
        if not _TS.match(ts):
            return _error("bad_timestamp")
        with self._lock:
            found = self._find(cid, ts)
            if found is None:
                return _error("message_not_found")
            message = _public(found)
        return _ok(type="message", channel=cid, message=message)

    def _m_conversations_replies(self, args: dict[str, Any]) -> Response:
        cid = self._resolve_channel(_str(args.get("channel")))
        if cid is None:
            return _error("channel_not_found")
        ts = _str(args.get("ts"))
        if not ts:
            return _error("invalid_arguments")
        meta = _truthy(args.get("include_all_metadata"))
        with self._lock:
            thread = [_public(m, metadata=meta) for m in self._thread_of(cid, ts)]
        if not thread:
            return _error("thread_not_found")
        limit = _int(args.get("limit"), default=1000)
        return _ok(
            messages=thread[:limit], has_more=len(thread) > limit, response_metadata={"next_cursor": ""}
        )

    def _m_conversations_list(self, args: dict[str, Any]) -> Response:
        """The channels, by ID and name (one page: the sandbox has a handful)."""
        with self._lock:
            channels = [
                {"id": cid, "name": name, "is_channel": True, "is_archived": False}
                for cid, name in sorted(self._channels.items(), key=lambda item: item[1])
            ]
        return _ok(channels=channels, response_metadata={"next_cursor": ""})

    def _m_conversations_history(self, args: dict[str, Any]) -> Response:
        cid = self._resolve_channel(_str(args.get("channel")))
        if cid is None:
            return _error("channel_not_found")
        oldest = float(_str(args.get("oldest")) or 0)
        limit = _int(args.get("limit"), default=100)
        meta = _truthy(args.get("include_all_metadata"))
        with self._lock:
            top = [
                _public(m, metadata=meta)
                for m in reversed(self._messages[cid])
                if (m.get("thread_ts") in (None, m["ts"])) and float(m["ts"]) >= oldest
            ]
        return _ok(
            messages=top[:limit],
            has_more=len(top) > limit,
            pin_count=0,
            response_metadata={"next_cursor": ""},
        )

    # -- internals (callers hold self._lock) --------------------------------------------------------
    def _resolve_channel(self, channel: str) -> str | None:
        channel = channel.strip()
        if not channel:
            return None
        with self._lock:
            if channel in self._channels:
                return channel
            name = channel.lstrip("#")
            cid = channel_id_for(name)
            return cid if self._channels.get(cid) == name else None

    def _next_ts(self) -> str:
        now_us = int(self.clock() * 1_000_000)
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def _find(self, cid: str, ts: str) -> dict[str, Any] | None:
        for m in self._messages.get(cid, []):
            if m["ts"] == ts:
                return m
        return None

    def _thread_of(self, cid: str, ts: str) -> list[dict[str, Any]]:
        found = self._find(cid, ts)
        if found is None:
            return []
        parent_ts = found.get("thread_ts") or found["ts"]
        parent = self._find(cid, parent_ts)
        if parent is None:
            return [found]
        replies = [m for m in self._messages[cid] if m.get("thread_ts") == parent_ts and m is not parent]
        return [parent, *replies]

    def _post(self, cid: str, args: dict[str, Any], *, user: str, bot: bool) -> dict[str, Any]:
        ts = self._next_ts()
        message: dict[str, Any] = {"type": "message", "ts": ts, "user": user, "team": _TEAM_ID}
        if bot:
            message.update(bot_id=_BOT_ID, app_id=_APP_ID, subtype="bot_message", username=self.bot_name)
        message["text"] = _str(args.get("text"))
        for key in ("blocks", "attachments"):
            if args.get(key) not in (None, ""):
                message[key] = _maybe_json(args[key])
        if isinstance(args.get("metadata"), dict):
            message["metadata"] = args["metadata"]
        thread_ts = _str(args.get("thread_ts"))
        parent = self._find(cid, thread_ts) if thread_ts else None
        if parent is not None:
            parent_ts = parent.get("thread_ts") or parent["ts"]  # a reply to a reply joins the thread
            parent = self._find(cid, parent_ts) or parent
            message["thread_ts"] = parent["ts"]
            message["parent_user_id"] = parent.get("user")
            parent["thread_ts"] = parent["ts"]
            parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
            parent["latest_reply"] = ts
            users = parent.setdefault("reply_users", [])
            if user not in users:
                users.append(user)
            parent["reply_users_count"] = len(users)
            if _truthy(args.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        self._messages[cid].append(message)
        return message


# -- module helpers ---------------------------------------------------------------------------------
def _arguments(request: Request) -> tuple[dict[str, Any], str | None]:
    """Method arguments (query, then body) and the token (header first, then a form/query field)."""
    args: dict[str, Any] = {k: v[0] for k, v in request.query.items()}
    token: str | None = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip() or None
    body_token: str | None = None
    if request.raw_body:
        if request.content_type == "application/json":
            try:
                body = json.loads(request.raw_body)
            except ValueError:
                body = None
            if isinstance(body, dict):
                body.pop("token", None)  # Slack reads a JSON call's token from the header only
                args.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
            form = request.form()
            body_token = form.pop("token", None)
            args.update(form)
    query_token = args.pop("token", None)
    if token is None:
        token = body_token or (str(query_token) if query_token else None)
    return args, token


def _ok(**fields: Any) -> Response:
    return Response.json({"ok": True, **fields})


def _error(code: str) -> Response:
    """Slack's error shape: HTTP 200, `{"ok": false, "error": code}`."""
    return Response.json({"ok": False, "error": code})


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _int(value: Any, default: int) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _maybe_json(value: Any) -> Any:
    """Form-encoded `blocks`/`attachments` arrive as JSON strings."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _has_content(args: dict[str, Any]) -> bool:
    return any(args.get(key) not in (None, "", [], "[]") for key in ("text", "blocks", "attachments"))


def _add_reaction(message: dict[str, Any], name: str, user: str) -> bool:
    """Add `user`'s reaction `name`; False when that user already reacted so."""
    reactions = message.setdefault("reactions", [])
    for reaction in reactions:
        if reaction["name"] == name:
            if user in reaction["users"]:
                return False
            reaction["users"].append(user)
            reaction["count"] = len(reaction["users"])
            return True
    reactions.append({"name": name, "users": [user], "count": 1})
    return True


def _public(message: dict[str, Any], *, metadata: bool = True) -> dict[str, Any]:
    """A deep copy without internal keys (what goes on the wire); `metadata=False` leaves the message's
    metadata out (what `conversations.*` answer without `include_all_metadata`)."""
    copied: dict[str, Any] = json.loads(json.dumps(message))
    if not metadata:
        copied.pop("metadata", None)
    return copied


def _metadata(value: Any) -> tuple[dict[str, Any] | None, str | None]:
    """`chat.postMessage`'s `metadata` (an object, or its JSON in a form post): (metadata, error code)."""
    if value in (None, ""):
        return None, None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None, "invalid_metadata_format"
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("event_type"), str)
        or not value["event_type"]
        or not isinstance(value.get("event_payload"), dict)
    ):
        return None, "invalid_metadata_format"
    if len(json.dumps(value)) > _METADATA_MAX_BYTES:
        return None, "metadata_too_large"
    return {"event_type": value["event_type"], "event_payload": value["event_payload"]}, None
