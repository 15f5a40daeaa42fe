"""The dispatcher's heartbeat: the outbox rows it holds keep a short lease while it lives.

Usage (the dispatcher does this; see intake/dispatch.py)::

    keeper = LeaseKeeper(outbox, owner, lease_s=10, renew_s=3)
    task = asyncio.create_task(keeper.run())      # renews every renew_s what is held
    keeper.hold(item.incident_id for item in claimed)
    keeper.drop(incident_id)                      # dispatched, or failed (the row is released)
    await keeper.release_all()                    # a graceful stop gives the rest back at once

Why: a claim is a lease, and a lease long enough for the slowest batch (60 s) made the rows of an
intake process that died wait a minute before another one dispatched them. A short lease (10 s)
renewed by its living holder every few seconds keeps the rows as long as the holder works on them and
frees them within about `lease_s` of its death. The renewal runs on the dispatcher's event loop (its
own thread): if that loop stops, renewals stop, and another replica takes the rows. A holder that
loses a row (its lease expired before a renewal) may still create its run; the Prefect idempotency key
makes that the same run, so a row is never dispatched twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from intake.outbox import Outbox

__all__ = ["LeaseKeeper"]

log = logging.getLogger("intake.dispatch")


class LeaseKeeper:
    """The incident ids one dispatcher holds, and the loop that renews their leases."""

    def __init__(self, outbox: Outbox, owner: str, lease_s: float, renew_s: float) -> None:
        self.outbox = outbox
        self.owner = owner
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.held: set[str] = set()
        self.renewals = 0

    def hold(self, incident_ids: Iterable[str]) -> None:
        self.held.update(incident_ids)

    def drop(self, incident_id: str) -> None:
        self.held.discard(incident_id)

    async def renew(self) -> None:
        """Renew every held lease once (a renewal that fails is logged; the next one tries again)."""
        held = sorted(self.held)
        if not held:
            return
        try:
            renewed = await asyncio.to_thread(self.outbox.renew, self.owner, held, self.lease_s)
        except Exception:
            log.exception("dispatcher: cannot renew %d leases", len(held))
            return
        self.renewals += 1
        if renewed < len(held):
            log.warning(
                "dispatcher: %d of %d leases had expired before renewal (another replica may take "
                "them; the idempotency key keeps one run per incident)",
                len(held) - renewed,
                len(held),
            )

    async def run(self) -> None:
        """Renew every `renew_s` until cancelled."""
        while True:
            await asyncio.sleep(self.renew_s)
            await self.renew()

    async def release_all(self) -> None:
        """Give back what is still held (a graceful stop): another replica takes it at once."""
        held, self.held = sorted(self.held), set()
        if held:
            try:
                await asyncio.to_thread(self.outbox.release, self.owner, held)
            except Exception:
                log.exception("dispatcher: cannot release %d leases; they expire by themselves", len(held))
