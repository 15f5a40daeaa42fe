"""Target leases and the recent changes per target (part of `Store`): one remediation per target at a time.

A lease is a row in `target_leases` keyed by the target (`runbook.policy.target_key`: cluster, namespace,
Deployment). `take_lease` is one write transaction: `INSERT … ON CONFLICT (key) DO NOTHING RETURNING`,
and when a row is there, take it over only if it expired or is already ours. Of any number of
concurrent callers exactly one holds a live lease, on SQLite and PostgreSQL alike. A crashed holder
blocks nobody past `expires_at`; a live one renews (`renew_lease`) while it works and releases
(`release_lease`) after verifying. Times are the store host's clock (`utc_now`), the same for all.

`count_changes` is what the budget per target reads: the automated changes of one kind made to one
target since a moment, from the action records of every incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update

from runbook.models import ActionStatus, utc_now
from runbook.store.database import BoundDatabase, Database, dialect_insert
from runbook.store.schema import actions, target_leases

__all__ = ["Lease", "LeaseRecords"]


@dataclass(frozen=True)
class Lease:
    """The lease on one target as stored: `won` says whether the caller holds it now."""

    key: str
    won: bool
    holder: str
    incident_id: str | None
    purpose: str | None
    taken_at: datetime
    expires_at: datetime


def _lease_of(row: object, won: bool) -> Lease:
    m = row._mapping  # type: ignore[attr-defined]
    return Lease(
        key=m["key"],
        won=won,
        holder=m["holder"],
        incident_id=m["incident_id"],
        purpose=m["purpose"],
        taken_at=m["taken_at"],
        expires_at=m["expires_at"],
    )


class LeaseRecords:
    """The lease half of `Store` (a mixin: `Store` gives it `_db`)."""

    _db: Database | BoundDatabase

    def take_lease(
        self,
        key: str,
        holder: str,
        ttl_s: float,
        *,
        incident_id: str | None = None,
        purpose: str | None = None,
    ) -> Lease:
        """Hold `key` for `ttl_s` if it is free, expired or already ours; else the holder's lease (`won=False`)."""
        if ttl_s <= 0:
            raise ValueError("take_lease: ttl_s must be > 0")
        now = utc_now()
        values = {
            "holder": holder,
            "incident_id": incident_id,
            "purpose": purpose,
            "taken_at": now,
            "expires_at": now + timedelta(seconds=ttl_s),
        }
        with self._db.tx(write=True) as conn:
            stmt = dialect_insert(conn, target_leases).values(key=key, **values)
            won = conn.execute(
                stmt.on_conflict_do_nothing(index_elements=["key"]).returning(target_leases.c.key)
            )
            won_it = won.first() is not None
            if not won_it:
                taken = conn.execute(
                    update(target_leases)
                    .where(
                        target_leases.c.key == key,
                        or_(target_leases.c.expires_at < now, target_leases.c.holder == holder),
                    )
                    .values(**values)
                )
                won_it = taken.rowcount == 1
            row = conn.execute(select(target_leases).where(target_leases.c.key == key)).first()
        if row is None:  # pragma: no cover - inserted or found in the same transaction
            raise RuntimeError(f"lease {key!r} neither taken nor found")
        return _lease_of(row, won_it)

    def renew_lease(self, key: str, holder: str, ttl_s: float) -> bool:
        """Extend our lease to now + `ttl_s`; False when it is no longer ours (expired and taken over)."""
        with self._db.tx(write=True) as conn:
            count = conn.execute(
                update(target_leases)
                .where(target_leases.c.key == key, target_leases.c.holder == holder)
                .values(expires_at=utc_now() + timedelta(seconds=ttl_s))
            ).rowcount
        return count == 1

    def release_lease(self, key: str, holder: str) -> bool:
        """Give our lease up; False when it was not ours (any more)."""
        with self._db.tx(write=True) as conn:
            count = conn.execute(
                delete(target_leases).where(target_leases.c.key == key, target_leases.c.holder == holder)
            ).rowcount
        return count == 1

    def get_lease(self, key: str) -> Lease | None:
        """The lease stored for `key` (perhaps expired), or None."""
        with self._db.tx() as conn:
            row = conn.execute(select(target_leases).where(target_leases.c.key == key)).first()
        return None if row is None else _lease_of(row, False)

    def count_changes(self, action: str, target: str, since: datetime) -> int:
        """Automated `action`s on `target` claimed since `since` (any incident) that ran or are running."""
        query = select(func.count()).where(
            actions.c.action == action,
            actions.c.target == target,
            actions.c.claimed_at >= since,
            actions.c.status.in_((ActionStatus.CLAIMED.value, ActionStatus.SUCCEEDED.value)),
        )
        with self._db.tx() as conn:
            return int(conn.execute(query).scalar() or 0)
