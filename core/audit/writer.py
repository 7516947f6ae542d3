"""The audit writer: turns committed events into audit entries, many rows per transaction.

Every message to the writer drains whatever is waiting, so under load the first message writes
a large batch and the ones behind it find nothing left to do. Two writers at once queue on the
row locks and the second finds the rows already audited; `event_id` is unique besides, so a
redelivered message never writes an entry twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from core import clock
from core.audit.models import AuditEntry
from core.db import insert_ignoring_conflicts
from core.events.models import Event
from core.uow import UnitOfWork

AUDIT_BATCH = 500


def _row(event: Event) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "type": event.type,
        "tenant_id": event.tenant_id,
        "actor_account_id": event.actor_account_id,
        "subject": event.subject,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "details": event.payload,
        "occurred_at": event.occurred_at,
    }


def write_pending(uow: UnitOfWork, *, batch: int = AUDIT_BATCH, max_batches: int = 20) -> int:
    """Write audit entries for unaudited events, `batch` per transaction; returns rows written."""
    written = 0
    for _ in range(max_batches):
        events: Sequence[Event] = uow.session.execute(
            sa.select(Event)
            .where(Event.audited_at.is_(None))
            .order_by(Event.occurred_at)
            .limit(batch)
            # Wait rather than skip: the fast path's "mark dispatched" holds these rows for a
            # moment right after publishing, and skipping them would leave them for the sweep.
            .with_for_update()
        ).scalars().all()
        if not events:
            uow.rollback()
            break
        now = clock.now()
        rows = [{**_row(event), "created_at": now} for event in events]
        written += _insert(uow, rows)
        uow.session.execute(
            sa.update(Event).where(Event.id.in_([e.id for e in events])).values(audited_at=now)
        )
        uow.commit()
        if len(events) < batch:
            break
    return written


def write_direct(uow: UnitOfWork, entries: Sequence[Mapping[str, Any]]) -> int:
    """Write security entries that had no transaction of their own (sent straight to the queue)."""
    now = clock.now()
    rows = [_direct_row(entry, now) for entry in entries]
    written = _insert(uow, rows)
    uow.commit()
    return written


def _direct_row(entry: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    def as_uuid(value: Any) -> uuid.UUID | None:
        return uuid.UUID(str(value)) if value else None

    return {
        "event_id": uuid.UUID(str(entry["id"])),
        "type": str(entry["type"]),
        "tenant_id": as_uuid(entry.get("tenant_id")),
        "actor_account_id": as_uuid(entry.get("actor_account_id")),
        "subject": entry.get("subject"),
        "ip": entry.get("ip"),
        "user_agent": entry.get("user_agent"),
        "request_id": entry.get("request_id"),
        "details": dict(entry.get("payload") or {}),
        "occurred_at": datetime.fromisoformat(entry["occurred_at"]),
        "created_at": now,
    }


def _insert(uow: UnitOfWork, rows: list[dict[str, Any]]) -> int:
    table = AuditEntry.__table__
    # The attribute is `details`; the column is `metadata` (a reserved name on declarative models).
    columns = [{("metadata" if k == "details" else k): v for k, v in row.items()} for row in rows]
    return insert_ignoring_conflicts(uow.session, table, columns)  # type: ignore[arg-type]
