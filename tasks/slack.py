"""Slack Web API over httpx: post into channels and threads, read reactions. Bounded retries, typed failures.

Usage (inside a flow; outside one call `.fn`)::

    parent = post_message("#incidents", "🔴 [P1 - CRITICAL] emotionscare down")   # SlackMessage
    post_message(parent.channel, "Assessment: ...", thread_ts=parent.ts)          # a reply in the thread
    get_reactions(parent.channel, parent.ts)       # [Reaction(name="eyes", users=["U0ALICE"], count=1)]
    bot_user_id()                                   # who we are (auth.test), to ignore our own reactions

The token comes from `settings.slack.token` (a `SecretStr`) and travels only in the
`Authorization: Bearer` header, as Slack requires for JSON calls; it never reaches a log, an exception
or a result. No token configured: `SlackNotConfigured` at once (the caller records the message as
undelivered; the remediation goes on).

Failures, as Slack reports them (HTTP 200 with `{"ok": false, "error": CODE}`, or HTTP 429/5xx, or no
answer at all) become `SlackFailed` with `.error` (Slack's code, or the HTTP/transport failure) and
`.transient`. Transient ones are retried by the declared policy `tasks.retry.RETRY` (stamina: 3
attempts, exponential backoff, a 429's `Retry-After` honoured up to a cap; the testing switch
`RUNBOOK_RETRY_BACKOFF_SCALE=0` removes every wait), the others fail at once. Prefect itself never
retries these tasks: a post is not idempotent. (slack_sdk's retry handlers would honour Retry-After
too, but not look for a lost post before sending it again; one policy serves Slack and PagerDuty.)

A post whose answer was lost (read timeout, connection dropped, 5xx) may have landed. Before posting it
again, `post_message` looks for it (the thread's replies, or the channel's recent history) and returns
the message it finds instead of posting twice. This narrows the window; it cannot close it (a request
the server is still working on when we look is not there yet), which is why the flows also claim each
message once per incident in the store.

Every message the runbooks post carries Slack message `metadata` naming the store claim it was sent
under (`tag(claim_key)`: `{"event_type": "incident_runbook_message", "event_payload": {"claim": KEY}}`).
When a run died between claiming a message and finishing the claim, the run that takes the claim over
asks Slack with `find_tagged` (`conversations.replies` in the thread, or `conversations.history` of the
channel, with `include_all_metadata`; a `#name` is first turned into its ID with `conversations.list`,
as those methods take IDs only) whether the message is there, and posts it only when it is not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from runbook.errors import RunbookError
from tasks import runtime
from tasks.clients import http_client
from tasks.retry import RETRY, RetryPolicy, is_transient_status, retried, retry_after_s

__all__ = [
    "Reaction",
    "SlackFailed",
    "SlackMessage",
    "SlackNotConfigured",
    "bot_user_id",
    "call",
    "channel_id",
    "find_tagged",
    "get_reactions",
    "post_message",
    "tag",
    "update_message",
]

METADATA_EVENT = "incident_runbook_message"
"""The `event_type` of the metadata on every message the runbooks post (see `tag`)."""
_PAGES = 10  # conversations.* pages read, at most, looking for a tagged message

_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackFailed(RunbookError):
    """A Slack call failed: `.error` is Slack's error code (or `http_503`, `ReadTimeout`, ...)."""

    def __init__(
        self,
        method: str,
        error: str,
        *,
        transient: bool,
        ambiguous: bool = False,
        retry_after_s: float | None = None,
        attempts: int = 1,
    ) -> None:
        self.method = method
        self.error = error
        self.transient = transient
        self.ambiguous = ambiguous
        """True when the request may have been carried out although no answer came back."""
        self.retry_after_s = retry_after_s
        self.attempts = attempts
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"Slack {method}: {error}{tries}")


class SlackNotConfigured(SlackFailed):
    """No Slack token in the settings: nothing can be delivered."""

    def __init__(self, method: str) -> None:
        super().__init__(method, "not_configured (RUNBOOK_SLACK_TOKEN is unset)", transient=False)


class SlackMessage(BaseModel):
    """A message Slack accepted: its channel ID and `ts` (a reply also has `thread_ts`)."""

    channel: str
    ts: str
    thread_ts: str | None = None
    text: str = ""
    attempts: int = 1
    found_after_lost_answer: bool = False
    """True when an answer was lost and the message was found already posted (not posted twice)."""


class Reaction(BaseModel):
    name: str
    users: list[str]
    count: int


def _once(http: httpx.Client, method: str, args: dict[str, Any]) -> dict[str, Any]:
    """One HTTP call of one Web API method; raises `SlackFailed` for every kind of failure."""
    try:
        response = http.post(f"/{method}", json={k: v for k, v in args.items() if v is not None})
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
        raise SlackFailed(method, type(exc).__name__, transient=True) from exc
    except httpx.TransportError as exc:  # sent, answer lost: read timeout, reset, protocol error
        raise SlackFailed(method, type(exc).__name__, transient=True, ambiguous=True) from exc
    if response.status_code == 429:
        raise SlackFailed(
            method,
            "ratelimited",
            transient=True,
            retry_after_s=retry_after_s(response),
        )
    if response.status_code >= 500 or is_transient_status(response.status_code):
        transient = is_transient_status(response.status_code)  # 5xx: it may have been carried out
        raise SlackFailed(method, f"http_{response.status_code}", transient=transient, ambiguous=transient)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SlackFailed(method, f"http_{response.status_code}_not_json", transient=False)
    if response.status_code != 200 or not body.get("ok"):
        error = str(body.get("error") or f"http_{response.status_code}")
        raise SlackFailed(method, error, transient=error in _TRANSIENT_ERRORS)
    return body


def call(
    method: str,
    args: dict[str, Any],
    *,
    policy: RetryPolicy = RETRY,
    before_retry: Callable[[SlackFailed, httpx.Client], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Call one Web API method with the settings' URL, token and timeout, retrying transient failures.

    `before_retry(failure, http)`, if given, runs before each retry and may return the answer to use
    instead of trying again (how `post_message` avoids posting twice). The answer carries the number
    of attempts made under the key `"_attempts"`. Raises `SlackFailed` (with `.attempts`) when the
    failure is permanent or the attempts are spent.
    """
    settings = runtime.settings()
    slack = settings.slack
    if slack.token is None:
        raise SlackNotConfigured(method)
    with http_client(settings, base_url=str(slack.api_url), timeout_s=slack.timeout_s) as http:
        http.headers["Authorization"] = f"Bearer {slack.token.get_secret_value()}"

        def look_first(failure: Exception) -> dict[str, Any] | None:
            if before_retry is None or not isinstance(failure, SlackFailed):
                return None
            return before_retry(failure, http)

        try:
            body, attempts = retried(policy, lambda: _once(http, method, args), before_retry=look_first)
        except SlackFailed as failure:
            raise SlackFailed(
                method,
                failure.error,
                transient=failure.transient,
                ambiguous=failure.ambiguous,
                attempts=failure.attempts,
            ) from failure
    return {**body, "_attempts": attempts}


def _landed(
    http: httpx.Client, channel: str, text: str, thread_ts: str | None, since: float
) -> dict[str, Any] | None:
    """The bot message with exactly `text` posted in the thread (or channel) since `since`, if any."""
    try:
        if thread_ts:
            body = _once(http, "conversations.replies", {"channel": channel, "ts": thread_ts, "limit": 200})
        else:
            body = _once(
                http, "conversations.history", {"channel": channel, "oldest": f"{since:.6f}", "limit": 50}
            )
    except SlackFailed as exc:
        runtime.logger(__name__).warning("could not check whether the lost post landed: %s", exc)
        return None
    for message in body.get("messages", []):
        if (
            message.get("text") == text
            and message.get("bot_id")
            and float(message.get("ts", 0)) >= since
            and message.get("ts") != thread_ts
        ):
            return {"ok": True, "channel": body.get("channel", channel), "ts": message["ts"], "found": True}
    return None


def tag(claim_key: str) -> dict[str, Any]:
    """The message `metadata` that names the store claim a message is sent under."""
    return {"event_type": METADATA_EVENT, "event_payload": {"claim": claim_key}}


def channel_id(channel: str) -> str:
    """The ID of `channel` (`#name` looked up with `conversations.list`; an ID as it is): Slack's
    `conversations.*` methods take IDs only. `SlackFailed` (`channel_not_found`) when no channel has it."""
    if not channel.startswith("#"):
        return channel
    name, args = (
        channel[1:],
        {"limit": 1000, "exclude_archived": True, "types": "public_channel,private_channel"},
    )
    for _ in range(_PAGES):
        body = call("conversations.list", args)
        for found in body.get("channels", []):
            if found.get("name") == name and found.get("id"):
                return str(found["id"])
        cursor = (body.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
        args = {**args, "cursor": cursor}
    raise SlackFailed("conversations.list", "channel_not_found", transient=False)


def find_tagged(
    channel: str, claim_key: str, thread_ts: str | None = None, since: float = 0.0
) -> SlackMessage | None:
    """Our message sent under `claim_key` (its metadata, see `tag`): in the thread `thread_ts`, or among the
    channel's top-level messages since `since` (epoch seconds); None when it is not there."""
    method = "conversations.replies" if thread_ts else "conversations.history"
    channel = channel_id(channel)
    args: dict[str, Any] = {"channel": channel, "limit": 200, "include_all_metadata": True}
    args.update({"ts": thread_ts} if thread_ts else {"oldest": f"{max(since, 0.0):.6f}"})
    for _ in range(_PAGES):
        body = call(method, args)
        for message in body.get("messages", []):
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == METADATA_EVENT and payload.get("claim") == claim_key:
                return SlackMessage(
                    channel=str(body.get("channel") or channel),
                    ts=str(message["ts"]),
                    thread_ts=thread_ts,
                    text=str(message.get("text", "")),
                    found_after_lost_answer=True,
                )
        cursor = (body.get("response_metadata") or {}).get("next_cursor")
        if not body.get("has_more") or not cursor:
            return None
        args["cursor"] = cursor
    return None


def send_message(
    channel: str,
    text: str,
    thread_ts: str | None = None,
    reply_broadcast: bool = False,
    policy: RetryPolicy = RETRY,
    metadata: dict[str, Any] | None = None,
) -> SlackMessage:
    """`chat.postMessage` (the plain function behind `post_message`; usable from any thread).

    `metadata`: Slack message metadata (`tag(claim_key)`), so a later run can recognise the message."""
    if not text.strip():
        raise ValueError("text: a Slack message needs text")
    # Slack's ts is epoch seconds from Slack's clock: allow ours to be a little ahead.
    since = time.time() - 2.0

    def look_first(failure: SlackFailed, http: httpx.Client) -> dict[str, Any] | None:
        return _landed(http, channel, text, thread_ts, since) if failure.ambiguous else None

    body = call(
        "chat.postMessage",
        {
            "channel": channel,
            "text": text,
            "thread_ts": thread_ts,
            "reply_broadcast": reply_broadcast or None,
            "unfurl_links": False,
            "metadata": metadata,
        },
        policy=policy,
        before_retry=look_first,
    )
    return SlackMessage(
        channel=str(body.get("channel") or channel),
        ts=str(body["ts"]),
        thread_ts=thread_ts,
        text=text,
        attempts=int(body["_attempts"]),
        found_after_lost_answer=bool(body.get("found")),
    )


@task(name="post_message", cache_policy=NO_CACHE)
def post_message(
    channel: str,
    text: str,
    thread_ts: str | None = None,
    reply_broadcast: bool = False,
    metadata: dict[str, Any] | None = None,
) -> SlackMessage:
    """Post `text` to `channel` (`#name` or an ID), in the thread `thread_ts` when given."""
    return send_message(channel, text, thread_ts, reply_broadcast, metadata=metadata)


@task(name="update_message", cache_policy=NO_CACHE)
def update_message(channel: str, ts: str, text: str) -> SlackMessage:
    """`chat.update`: replace the text of one of our messages (idempotent: retried safely)."""
    body = call("chat.update", {"channel": channel, "ts": ts, "text": text})
    return SlackMessage(channel=str(body.get("channel") or channel), ts=ts, text=text)


def read_reactions(channel: str, ts: str) -> list[Reaction]:
    """`reactions.get` on one message (the plain function behind `get_reactions`)."""
    body = call("reactions.get", {"channel": channel, "timestamp": ts, "full": True})
    message = body.get("message") or {}
    return [
        Reaction(
            name=str(r.get("name")), users=[str(u) for u in r.get("users", [])], count=int(r.get("count", 0))
        )
        for r in message.get("reactions", [])
    ]


@task(name="get_reactions", cache_policy=NO_CACHE)
def get_reactions(channel: str, ts: str) -> list[Reaction]:
    """Who reacted to a message, and with what (a person acknowledging an alert reacts to it)."""
    return read_reactions(channel, ts)


def whoami() -> str:
    """Our own Slack user ID (`auth.test`), the plain function behind `bot_user_id`."""
    return str(call("auth.test", {}).get("user_id", ""))


@task(name="bot_user_id", cache_policy=NO_CACHE)
def bot_user_id() -> str:
    """Our own Slack user ID, so our reactions are never taken for a person's acknowledgement."""
    return whoami()
