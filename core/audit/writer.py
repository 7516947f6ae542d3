"""The audit writer: turns committed events into audit entries, many rows per transaction.

Every message to the writer drains whatever is waiting, so under load the first message writes
a large batch and the ones behind it find nothing left to do. Two writers at once queue on the
row locks and the second finds the rows already audited; `event_id` is unique besides, so a
redelivered message never writes an entry twice. Plain Core statements: no ORM objects to
build, and nothing for the session to synchronise.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from core import clock
from core.audit.models import AuditEntry
from core.caching import ACTIVITY, invalidate_after_commit
from core.db import id_in, insert_ignoring_conflicts
from core.events.models import EVENTS
from core.uow import UnitOfWork

AUDIT_BATCH = 500
_events = EVENTS
_COLUMNS = (_events.c.id, _events.c.type, _events.c.tenant_id, _events.c.actor_account_id,
            _events.c.subject, _events.c.ip, _events.c.user_agent, _events.c.request_id,
            _events.c.payload, _events.c.occurred_at)


def write_pending(uow: UnitOfWork, *, batch: int = AUDIT_BATCH, max_batches: int = 20) -> int:
    """Write audit entries for unaudited events, `batch` per transaction; returns how many
    events were audited (an entry that a racing writer inserted first counts once, here)."""
    written = 0
    for _ in range(max_batches):
        rows = uow.session.execute(
            sa.select(*_COLUMNS)
            .where(_events.c.audited_at.is_(None))
            .order_by(_events.c.occurred_at)
            .limit(batch)
            # Skip rows another writer holds: it audits them. Rows the relay or the dispatcher
            # holds get the nudge each sends after its commit (and the sweep is the backstop);
            # waiting instead parked a worker thread per nudge behind the one before it.
            # NO KEY UPDATE: the key-share lock of a handler claim (its foreign key to the
            # event) must not make the writer skip the row.
            .with_for_update(skip_locked=True, key_share=True)
        ).all()
        if not rows:
            uow.rollback()
            break
        now = clock.now()
        _insert(uow, [
            {"event_id": r.id, "type": r.type, "tenant_id": r.tenant_id,
             "actor_account_id": r.actor_account_id, "subject": r.subject, "ip": r.ip,
             "user_agent": r.user_agent, "request_id": r.request_id, "metadata": r.payload,
             "occurred_at": r.occurred_at, "created_at": now}
            for r in rows
        ])
        dialect = uow.session.get_bind().dialect.name
        uow.session.execute(
            sa.update(_events).where(id_in(_events.c.id, [r.id for r in rows], dialect))
            .values(audited_at=now)
        )
        uow.commit()
        written += len(rows)
        if len(rows) < batch:
            break
    return written


def write_direct(uow: UnitOfWork, entries: Sequence[Mapping[str, Any]]) -> int:
    """Write security entries that had no transaction of their own (sent straight to the queue)."""
    now = clock.now()
    _insert(uow, [_direct_row(entry, now) for entry in entries])
    uow.commit()
    return len(entries)


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
        "metadata": dict(entry.get("payload") or {}),
        "occurred_at": datetime.fromisoformat(entry["occurred_at"]),
        "created_at": now,
    }


def _insert(uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
    insert_ignoring_conflicts(uow.session, AuditEntry.__table__, rows)  # type: ignore[arg-type]
    # A person's security activity (their dashboards) is cached: it goes stale with the commit.
    identities = {row["subject"].removeprefix("identity:") for row in rows
                  if (row["subject"] or "").startswith("identity:")}
    invalidate_after_commit(uow.session, *(ACTIVITY.key(i) for i in sorted(identities)))
