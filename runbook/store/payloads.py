"""Raw payloads and alerts: what the intake keeps of a request before any incident (part of `Store`).

A raw payload is the request body exactly as received, with its headers minus credentials; with a
`request_id` (Sentry's, see intake/ingest.py) it is stored once per source: the second one finds the
first (`ON CONFLICT (source, request_id) DO NOTHING`, revision 0002).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from runbook.errors import NotFound, StoreFailed
from runbook.models import Alert, new_id, utc_now
from runbook.store.database import BoundDatabase, Database
from runbook.store.ingest_writer import alert_values
from runbook.store.rows import alert_of
from runbook.store.schema import actions, alerts, incidents, raw_payloads, timeline
from runbook.store.statements import statements

__all__ = ["PayloadRecords", "RawPayload"]


@dataclass(frozen=True)
class RawPayload:
    """A request body exactly as received, with its (credential-free) headers."""

    id: str
    source: str
    body: bytes
    headers: dict[str, str]
    received_at: datetime
    request_id: str | None = None


_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|key|signature|password", re.IGNORECASE)


class PayloadRecords:
    """The raw-payload and alert half of `Store` (a mixin: `Store` gives it `_db`)."""

    _db: Database | BoundDatabase

    def save_raw_payload(
        self, source: str, body: bytes, headers: Mapping[str, str], *, request_id: str | None = None
    ) -> str:
        """Keep a request body as received (credential headers left out); its id goes in `Alert.raw_ref`."""
        return self.save_raw_payload_once(source, body, headers, request_id=request_id)[0]

    def save_raw_payload_once(
        self, source: str, body: bytes, headers: Mapping[str, str], *, request_id: str | None = None
    ) -> tuple[str, bool]:
        """`(id, stored)`: with a `request_id` already stored for `source`, that payload's id and False."""
        values = self.raw_values(source, body, headers, request_id=request_id)
        raw_id = str(values["id"])
        with self._db.tx(write=True) as conn:
            sql = statements(conn.dialect.name)
            if request_id is None:
                conn.execute(sql.insert_raw, values)
                return raw_id, True
            if conn.execute(sql.insert_raw_once, values).first() is not None:
                return raw_id, True
            first = conn.execute(
                sql.raw_by_request, {"b_source": source, "b_request": request_id}
            ).scalar_one()
            return str(first), False

    @staticmethod
    def raw_values(
        source: str, body: bytes, headers: Mapping[str, str], *, request_id: str | None
    ) -> dict[str, Any]:
        """The `raw_payloads` row of a request (a fresh id; credential headers left out)."""
        return {
            "id": new_id(),
            "source": source,
            "received_at": utc_now(),
            "headers": {k.lower(): v for k, v in headers.items() if not _SECRET_HEADER.search(k)},
            "body": bytes(body),
            "request_id": request_id,
        }

    def get_raw_payload(self, raw_id: str) -> RawPayload:
        """The payload saved under `raw_id` (`NotFound` otherwise)."""
        with self._db.tx() as conn:
            row = conn.execute(select(raw_payloads).where(raw_payloads.c.id == raw_id)).mappings().first()
        if row is None:
            raise NotFound(f"no raw payload {raw_id!r}")
        return RawPayload(
            id=row["id"],
            source=row["source"],
            body=bytes(row["body"]),
            headers=dict(row["headers"]),
            received_at=row["received_at"],
            request_id=row["request_id"],
        )

    def count_rows(self) -> dict[str, int]:
        """How many rows each table of the store holds (raw payloads, alerts, incidents, ...)."""
        with self._db.tx() as conn:
            return {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (raw_payloads, alerts, incidents, timeline, actions)
            }

    # -- alerts --------------------------------------------------------------------------------------------

    def add_alert(self, alert: Alert) -> Alert:
        """Store `alert` (idempotent on `alert.id`: a second add returns the stored one).

        Inserted: `alert` itself is returned (no read-back); already stored: the stored row.
        """
        values = alert_values(alert, raw_ref=alert.raw_ref, incident_id=None)
        del values["incident_id"]  # a stored alert keeps its link (this insert does not set it)
        with self._db.tx(write=True) as conn:
            sql = statements(conn.dialect.name)
            if conn.execute(sql.insert_alert, values).rowcount == 1:
                return alert
            row = conn.execute(sql.alert_by_id, {"b_id": alert.id}).mappings().first()
        if row is None:
            raise StoreFailed(f"alert {alert.id!r} neither inserted nor found")
        return alert_of(row)

    def list_alerts(
        self, *, incident_id: str | None = None, fingerprint: str | None = None, limit: int = 1000
    ) -> list[Alert]:
        """Alerts, oldest first, optionally only those of one incident or one fingerprint."""
        query = select(alerts).order_by(alerts.c.received_at, alerts.c.id).limit(limit)
        if incident_id is not None:
            query = query.where(alerts.c.incident_id == incident_id)
        if fingerprint is not None:
            query = query.where(alerts.c.fingerprint == fingerprint)
        with self._db.tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [alert_of(r) for r in rows]

    def alert_incident(self, alert_id: str) -> str | None:
        """The id of the incident `alert_id` belongs to, or None."""
        with self._db.tx() as conn:
            row = conn.execute(select(alerts.c.incident_id).where(alerts.c.id == alert_id)).first()
        if row is None:
            raise NotFound(f"no alert {alert_id!r}")
        return row[0]
