"""Action records: claimed before the action runs, exactly one winner (part of `Store`).

`claim_action` is `INSERT … ON CONFLICT (key) DO NOTHING RETURNING` (the dialect's insert): of any
number of concurrent callers for one (incident, action, target), exactly one gets `won=True`, on SQLite
and PostgreSQL alike (tests/runbook/store/test_concurrency.py: 50 threads, 50 processes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, select, update

from runbook.errors import NotFound, StoreFailed
from runbook.models import ActionRecord, ActionStatus, action_key, utc_now
from runbook.store.database import BoundDatabase, Database, dialect_insert
from runbook.store.rows import action_of
from runbook.store.schema import actions, incidents

__all__ = ["ActionRecords", "Claim", "require_incident"]


@dataclass(frozen=True)
class Claim:
    """The answer of `claim_action`: `won` says whether this caller may act; `record` is the stored claim."""

    won: bool
    record: ActionRecord


def require_incident(conn: Connection, incident_id: str) -> None:
    """`NotFound` unless the incident exists."""
    if conn.execute(select(incidents.c.id).where(incidents.c.id == incident_id)).first() is None:
        raise NotFound(f"no incident {incident_id!r}")


class ActionRecords:
    """The action half of `Store` (a mixin: `Store` gives it `_db`)."""

    _db: Database | BoundDatabase

    def claim_action(
        self,
        incident_id: str,
        action: str,
        target: str,
        run_id: str | None = None,
        detail: str | None = None,
        *,
        retry_failed: bool = False,
    ) -> Claim:
        """Record the action *before* it runs; `won` tells whether this caller may act.

        Exactly one of any number of concurrent callers for (incident, action, target) wins. With
        `retry_failed`, a claim whose action finished `failed` can be won again (once).
        """
        key = action_key(incident_id, action, target)
        now = utc_now()
        claimed = {
            "status": ActionStatus.CLAIMED.value,
            "claimed_at": now,
            "run_id": run_id,
            "detail": detail,
        }
        with self._db.tx(write=True) as conn:
            require_incident(conn, incident_id)
            stmt = dialect_insert(conn, actions).values(
                key=key, incident_id=incident_id, action=action, target=target, **claimed
            )
            won = conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]).returning(actions.c.key))
            won_it = won.first() is not None
            if not won_it and retry_failed:
                retried = conn.execute(
                    update(actions)
                    .where(actions.c.key == key, actions.c.status == ActionStatus.FAILED.value)
                    .values(**claimed, finished_at=None)
                )
                won_it = retried.rowcount == 1
            record = conn.execute(select(actions).where(actions.c.key == key)).mappings().first()
        if record is None:
            raise StoreFailed(f"claim {key!r} neither inserted nor found")
        return Claim(won=won_it, record=action_of(record))

    def adopt_action(
        self,
        key: str,
        from_run_id: str | None,
        run_id: str | None,
        detail: str | None = None,
        *,
        claimed_before: datetime | None = None,
    ) -> Claim:
        """Take over a claim left started-but-unfinished by the run `from_run_id` (now dead).

        Exactly one of any number of concurrent callers wins: the claim passes to `run_id` only while it
        is still `claimed` by `from_run_id` (one conditional UPDATE). The caller then finds out from the
        world whether the action happened (flows/orphans.py) before doing it again. A claim no run holds
        (`from_run_id` None: intake's sweeper) is taken only when it was claimed before `claimed_before`
        (required then): the taking resets `claimed_at`, so a second taker finds it fresh and loses.
        """
        now = utc_now()
        holder = actions.c.run_id == from_run_id
        if from_run_id is None:
            if claimed_before is None or claimed_before > now:
                # in the future, the taking's own claimed_at (now) would still be before it: all would win
                raise ValueError("adopting a claim no run holds needs claimed_before, not in the future")
            holder = and_(actions.c.run_id.is_(None), actions.c.claimed_at < claimed_before)
        values = {"run_id": run_id, "claimed_at": now, **({} if detail is None else {"detail": detail})}
        with self._db.tx(write=True) as conn:
            moved = conn.execute(
                update(actions)
                .where(actions.c.key == key, actions.c.status == ActionStatus.CLAIMED.value, holder)
                .values(**values)
            ).rowcount
            row = conn.execute(select(actions).where(actions.c.key == key)).mappings().first()
        if row is None:
            raise NotFound(f"no action {key!r}")
        return Claim(won=moved == 1, record=action_of(row))

    def finish_action(self, key: str, status: ActionStatus, detail: str | None = None) -> ActionRecord:
        """Record how a claimed action ended (`detail` replaces the claim's when given)."""
        status = ActionStatus(status)
        if status == ActionStatus.CLAIMED:
            raise ValueError("finish_action needs a final status, not 'claimed'")
        with self._db.tx(write=True) as conn:
            count = conn.execute(
                update(actions)
                .where(actions.c.key == key)
                .values(
                    status=status.value,
                    finished_at=utc_now(),
                    **({} if detail is None else {"detail": detail}),
                )
            ).rowcount
            if count == 0:
                raise NotFound(f"no action {key!r}")
            row = conn.execute(select(actions).where(actions.c.key == key)).mappings().one()
        return action_of(row)

    def get_action(self, key: str) -> ActionRecord | None:
        """The action record stored under `key`, or None."""
        with self._db.tx() as conn:
            row = conn.execute(select(actions).where(actions.c.key == key)).mappings().first()
        return None if row is None else action_of(row)

    def list_actions(self, incident_id: str) -> list[ActionRecord]:
        """The incident's action records in the order they were claimed."""
        query = (
            select(actions)
            .where(actions.c.incident_id == incident_id)
            .order_by(actions.c.claimed_at, actions.c.key)
        )
        with self._db.tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [action_of(r) for r in rows]
