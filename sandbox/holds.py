"""Held calls: a stand-in's next call of one method hangs until released, so a test can kill its caller
right there (between an action's claim and its answer), deterministically, with no sleep.

Usage (inside a stand-in; `SlackStandIn.hold_next`, `PagerDutyStandIn.hold_next`)::

    self.holds = HeldCalls()
    hold = self.holds.add("chat.postMessage", landed=True)    # what the test gets
    ...
    held = self.holds.take("chat.postMessage")                 # in the handler: None when not held
    if held is not None and not held.landed:
        held.wait(); return <no answer worth having>           # never carried out
    answer = carry_out(); if held: held.wait(); return answer  # carried out, answer held

`landed=True`: the call is carried out and only its answer is held (the caller dies after the service
had it); `landed=False`: it is never carried out (the caller dies before). A hold waits at most
`MAX_HOLD_S`, and every hold is released when the stand-in stops or is reset.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["MAX_HOLD_S", "HeldCalls", "Hold"]

MAX_HOLD_S = 300.0


@dataclass
class Hold:
    """One held call: `reached` is set once the call is in the hold; `release()` lets it go on."""

    method: str
    landed: bool
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()

    def wait(self) -> None:
        """In the handler: wait for `release()` (bounded by `MAX_HOLD_S`)."""
        self.released.wait(MAX_HOLD_S)


class HeldCalls:
    """The holds of one stand-in, taken in the order they were added, one call each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds: list[Hold] = []

    def add(self, method: str, *, landed: bool) -> Hold:
        hold = Hold(method, landed)
        with self._lock:
            self._holds.append(hold)
        return hold

    def take(self, method: str) -> Hold | None:
        with self._lock:
            for hold in self._holds:
                if hold.method == method and not hold.reached.is_set():
                    hold.reached.set()
                    return hold
        return None

    def release_all(self) -> None:
        with self._lock:
            holds, self._holds = list(self._holds), []
        for hold in holds:
            hold.release()
