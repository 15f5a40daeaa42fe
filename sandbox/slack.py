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

The Slack workspace's state (channels, messages, threads, reactions) is `sandbox.slack_workspace`; the
wire conventions (argument parsing, answer shapes, metadata validation) are `sandbox.slack_wire`.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from sandbox.holds import HeldCalls, Hold
from sandbox.httpserver import HttpError, Request, Response, StandIn
from sandbox.slack_wire import (
    EMOJI_NAME,
    TS,
    error,
    has_content,
    limit_arg,
    maybe_json,
    ok,
    parse_arguments,
    parse_metadata,
    text_arg,
    truthy,
)
from sandbox.slack_workspace import (
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    SlackWorkspace,
    add_reaction,
    channel_id_for,
    public_copy,
)

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


class SlackStandIn(SlackWorkspace, StandIn):
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

    def _reset_state(self) -> None:
        self.holds.release_all()
        with self._lock:
            self._channels = {channel_id_for(name): name for name in self._initial_channels}
            self._messages = {cid: [] for cid in self._channels}
            self._last_ts_us = 0

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
                args, token = parse_arguments(request)
            except HttpError:
                return error("invalid_form_data")
            if token is None:
                return error("not_authed")
            if not hmac.compare_digest(token.encode(), self.token.encode()):
                return error("invalid_auth")
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
        return ok(
            url=f"https://{self.team}.slack.com/",
            team=self.team,
            user=self.bot_name,
            team_id=TEAM_ID,
            user_id=BOT_USER_ID,
            bot_id=BOT_ID,
            is_enterprise_install=False,
        )

    def _m_chat_postMessage(self, args: dict[str, Any]) -> Response:
        cid = self._resolve_channel(text_arg(args.get("channel")))
        if cid is None:
            return error("channel_not_found")
        if not has_content(args):
            return error("no_text")
        if len(text_arg(args.get("text"))) > 40000:
            return error("msg_too_long")
        metadata, problem = parse_metadata(args.get("metadata"))
        if problem:
            return error(problem)
        if metadata is not None:
            args = {**args, "metadata": metadata}
        with self._lock:
            message = self._post(cid, args, user=BOT_USER_ID, bot=True)
        return ok(channel=cid, ts=message["ts"], message=public_copy(message))

    def _m_chat_update(self, args: dict[str, Any]) -> Response:
        cid = self._resolve_channel(text_arg(args.get("channel")))
        if cid is None:
            return error("channel_not_found")
        ts = text_arg(args.get("ts"))
        if not has_content(args):
            return error("no_text")
        with self._lock:
            found = self._find(cid, ts)
            if found is None:
                return error("message_not_found")
            if found.get("user") != BOT_USER_ID:
                return error("cant_update_message")
            for key in ("text", "blocks", "attachments"):
                if key in args:
                    found[key] = maybe_json(args[key])
            found["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
            message = public_copy(found)
        return ok(channel=cid, ts=ts, text=message.get("text", ""), message=message)

    def _m_reactions_add(self, args: dict[str, Any]) -> Response:
        channel, ts, name = (
            text_arg(args.get("channel")),
            text_arg(args.get("timestamp")),
            text_arg(args.get("name")),
        )
        if not channel or not ts:
            return error("no_item_specified")
        cid = self._resolve_channel(channel)
        if cid is None:
            return error("channel_not_found")
        if not TS.match(ts):
            return error("bad_timestamp")
        name = name.strip(":")
        if not EMOJI_NAME.match(name):
            return error("invalid_name")
        with self._lock:
            found = self._find(cid, ts)
            if found is None:
                return error("message_not_found")
            if not add_reaction(found, name, BOT_USER_ID):
                return error("already_reacted")
        return ok()

    def _m_reactions_get(self, args: dict[str, Any]) -> Response:
        channel, ts = text_arg(args.get("channel")), text_arg(args.get("timestamp"))
        if not channel or not ts:
            return error("no_item_specified")
        cid = self._resolve_channel(channel)
        if cid is None:
            return error("channel_not_found")
        if not TS.match(ts):
            return error("bad_timestamp")
        with self._lock:
            found = self._find(cid, ts)
            if found is None:
                return error("message_not_found")
            message = public_copy(found)
        return ok(type="message", channel=cid, message=message)

    def _m_conversations_replies(self, args: dict[str, Any]) -> Response:
        cid = self._resolve_channel(text_arg(args.get("channel")))
        if cid is None:
            return error("channel_not_found")
        ts = text_arg(args.get("ts"))
        if not ts:
            return error("invalid_arguments")
        meta = truthy(args.get("include_all_metadata"))
        with self._lock:
            thread = [public_copy(m, metadata=meta) for m in self._thread_of(cid, ts)]
        if not thread:
            return error("thread_not_found")
        limit = limit_arg(args.get("limit"), default=1000)
        return ok(
            messages=thread[:limit], has_more=len(thread) > limit, response_metadata={"next_cursor": ""}
        )

    def _m_conversations_list(self, args: dict[str, Any]) -> Response:
        """The channels, by ID and name (one page: the sandbox has a handful)."""
        with self._lock:
            channels = [
                {"id": cid, "name": name, "is_channel": True, "is_archived": False}
                for cid, name in sorted(self._channels.items(), key=lambda item: item[1])
            ]
        return ok(channels=channels, response_metadata={"next_cursor": ""})

    def _m_conversations_history(self, args: dict[str, Any]) -> Response:
        cid = self._resolve_channel(text_arg(args.get("channel")))
        if cid is None:
            return error("channel_not_found")
        oldest = float(text_arg(args.get("oldest")) or 0)
        limit = limit_arg(args.get("limit"), default=100)
        meta = truthy(args.get("include_all_metadata"))
        with self._lock:
            top = [
                public_copy(m, metadata=meta)
                for m in reversed(self._messages[cid])
                if (m.get("thread_ts") in (None, m["ts"])) and float(m["ts"]) >= oldest
            ]
        return ok(
            messages=top[:limit],
            has_more=len(top) > limit,
            pin_count=0,
            response_metadata={"next_cursor": ""},
        )
