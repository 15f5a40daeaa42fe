"""The in-memory Slack workspace behind the Slack stand-in (`sandbox.slack`): channels, messages,
threads and reactions, the `ts` clock, and the in-process helpers tests, the demo and drills use to read
it and to act as a person (react, post). `SlackStandIn` mixes it in; the HTTP methods live there.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from sandbox.slack_wire import maybe_json, text_arg, truthy

TEAM_ID = "T0SANDBOX1"
BOT_USER_ID = "U0RUNBOOK1"
BOT_ID = "B0RUNBOOK1"
APP_ID = "A0RUNBOOK1"


def channel_id_for(name: str) -> str:
    """A stable Slack-looking channel ID for a channel name (`C0` + 9 upper-case characters)."""
    digest = hashlib.sha256(name.encode()).hexdigest().upper()
    return "C0" + digest[:9]


class SlackWorkspace:
    """Channels and messages kept in memory; the stand-in sets these attributes in its `__init__`."""

    clock: Callable[[], float]
    bot_name: str
    _lock: threading.RLock
    _channels: dict[str, str]  # id -> name
    _messages: dict[str, list[dict[str, Any]]]  # channel id -> messages in ts order
    _last_ts_us: int

    # -- state helpers (in-process, for tests, the demo and drills) --------------------------------
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
            return [public_copy(m) for m in self._messages[cid] if m.get("thread_ts") in (None, m["ts"])]

    def all_messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message of a channel, replies included, in `ts` order (copies)."""
        cid = self.channel_id(channel)
        with self._lock:
            return [public_copy(m) for m in self._messages[cid]]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The parent message `ts` followed by its replies, oldest first; [] if no such message."""
        cid = self.channel_id(channel)
        with self._lock:
            return [public_copy(m) for m in self._thread_of(cid, ts)]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        cid = self.channel_id(channel)
        with self._lock:
            found = self._find(cid, ts)
            return public_copy(found) if found is not None else None

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
            add_reaction(found, name.strip(":"), user)

    def post_as_user(self, channel: str, text: str, user: str, thread_ts: str | None = None) -> str:
        """A person posts (e.g. replies "ack" in the incident thread); returns the message `ts`."""
        cid = self.channel_id(channel)
        with self._lock:
            return self._post(cid, {"text": text, "thread_ts": thread_ts}, user=user, bot=False)["ts"]

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
        message: dict[str, Any] = {"type": "message", "ts": ts, "user": user, "team": TEAM_ID}
        if bot:
            message.update(bot_id=BOT_ID, app_id=APP_ID, subtype="bot_message", username=self.bot_name)
        message["text"] = text_arg(args.get("text"))
        for key in ("blocks", "attachments"):
            if args.get(key) not in (None, ""):
                message[key] = maybe_json(args[key])
        if isinstance(args.get("metadata"), dict):
            message["metadata"] = args["metadata"]
        thread_ts = text_arg(args.get("thread_ts"))
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
            if truthy(args.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        self._messages[cid].append(message)
        return message


def add_reaction(message: dict[str, Any], name: str, user: str) -> bool:
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


def public_copy(message: dict[str, Any], *, metadata: bool = True) -> dict[str, Any]:
    """A deep copy without internal keys (what goes on the wire); `metadata=False` leaves the message's
    metadata out (what `conversations.*` answer without `include_all_metadata`)."""
    copied: dict[str, Any] = json.loads(json.dumps(message))
    if not metadata:
        copied.pop("metadata", None)
    return copied
