"""The audit writer: turns committed events into chained audit entries, many per transaction.

Every message to the writer drains whatever is waiting, so under load the first message writes
a large batch and the ones behind it find nothing left to do. Two writers at once skip each
other's events (`SKIP LOCKED`); where their batches share a chain, the second waits on that
chain's head row, so every chain grows in order with no gap: a sequence number is taken under
the head's lock and committed with it, or rolled back with it. Heads are locked in chain order,
so two writers never wait on each other in a circle. An event is audited once: its
`audited_at`, set in the same transaction, is what the next writer skips on.

Security entries with no transaction of their own become outbox rows too (their id is the
outbox's primary key, so a redelivered one adds nothing), chained in the next batch
(`queue_direct`) or, one transaction each, at once (`write_direct`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.audit import chain, partitions
from core.audit.models import AUDIT_ENTRIES, AuditChain
from core.caching import ACTIVITY, invalidate_after_commit
from core.db import conflict_insert, id_in, insert_ignoring_conflicts
from core.events.models import EVENTS
from core.uow import UnitOfWork

AUDIT_BATCH = 500
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_events = EVENTS
_heads: sa.Table = AuditChain.__table__  # type: ignore[assignment]
_COLUMNS = (_events.c.id, _events.c.type, _events.c.tenant_id, _events.c.actor_account_id,
            _events.c.subject, _events.c.ip, _events.c.user_agent, _events.c.request_id,
            _events.c.payload, _events.c.occurred_at)
_UPDATE_HEAD = (
    sa.update(_heads).where(_heads.c.chain_id == sa.bindparam("head_chain"))
    .values(seq=sa.bindparam("head_seq"), head_hash=sa.bindparam("head_hash_value"),
            last_created_at=sa.bindparam("head_created"))
)


def write_pending(uow: UnitOfWork, *, batch: int = AUDIT_BATCH, max_batches: int = 20) -> int:
    """Write audit entries for unaudited events, `batch` per transaction; returns how many
    events were audited."""
    written = 0
    for _ in range(max_batches):
        _ready_partitions(uow)
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
        entries = [_entry_of(row) for row in rows]
        append(uow.session, entries)
        dialect = uow.session.get_bind().dialect.name
        uow.session.execute(
            sa.update(_events).where(id_in(_events.c.id, [r.id for r in rows], dialect))
            .values(audited_at=clock.now())
        )
        uow.commit()
        written += len(rows)
        if len(rows) < batch:
            break
    return written


def _ready_partitions(uow: UnitOfWork) -> None:
    """This month's partition exists before any event is locked. Creating one takes an
    exclusive lock on the audit table; taken while holding events, it deadlocked with an
    erasure that had read the audit table and was waiting for those events. (Once a process
    has seen the month exist, this costs nothing; the scheduler makes months ahead.)"""
    partitions.ensure_months(uow.session, [clock.now()])
    uow.commit()


def queue_direct(uow: UnitOfWork, entries: Sequence[Mapping[str, Any]]) -> None:
    """Security entries that had no transaction of their own (sent straight to the queue): into
    the outbox, where the batch writer chains them with everything else (a redelivered entry
    adds nothing: its id is the outbox's key). One insert per message; chaining each on its
    own would hold its chain's head for a transaction per entry, which a flood of refused
    requests (all on the platform's chain) would queue behind."""
    now = clock.now()
    insert_ignoring_conflicts(uow.session, _events, [
        {**_outbox_row(entry, now), "audited_at": None} for entry in entries])
    uow.commit()


def write_direct(uow: UnitOfWork, entries: Sequence[Mapping[str, Any]]) -> int:
    """Security entries that had no transaction of their own (sent straight to the queue), in
    one transaction: each goes into the outbox already marked audited, and only those that were
    not there yet (a redelivered entry is) are chained. Returns how many were new."""
    now = clock.now()
    rows = [_outbox_row(entry, now) for entry in entries]
    insert = conflict_insert(uow.db.dialect, _events)
    new = set(uow.session.execute(
        insert.on_conflict_do_nothing().returning(_events.c.id), rows).scalars())
    fresh = [_entry_of(SimpleNamespace(**row)) for row in rows if row["id"] in new]
    if fresh:
        append(uow.session, fresh)
    uow.commit()
    return len(fresh)


def append(session: Session, entries: list[dict[str, Any]]) -> None:
    """Chain `entries` (in this order) onto their chains and insert them. The caller commits."""
    now = clock.now()
    heads = _lock_heads(session, sorted({entry["chain_id"] for entry in entries}))
    for entry in entries:
        seq, head_hash, last_created = heads[entry["chain_id"]]
        # Never earlier than the entry before it: a chain's months are a clean prefix to drop.
        entry["created_at"] = max(now, last_created)
        entry["seq"], entry["prev_hash"] = seq + 1, head_hash
        salt = chain.new_salt()
        entry["personal_salt"] = salt
        entry["personal_digest"] = chain.personal_digest(salt, entry)
        entry["hash"] = chain.entry_hash(entry)
        heads[entry["chain_id"]] = (seq + 1, entry["hash"], entry["created_at"])
    partitions.ensure_months(session, {entry["created_at"] for entry in entries})
    insert_entries(session, entries)
    _forget_activity(session, entries)
    session.execute(_UPDATE_HEAD, [
        {"head_chain": key, "head_seq": seq, "head_hash_value": head, "head_created": created}
        for key, (seq, head, created) in heads.items()])


def _forget_activity(session: Session, entries: list[dict[str, Any]]) -> None:
    # A person's security activity (their dashboards) is cached: it goes stale with the commit.
    identities = {entry["subject"].removeprefix("identity:") for entry in entries
                  if (entry["subject"] or "").startswith("identity:")}
    invalidate_after_commit(session, *(ACTIVITY.key(i) for i in sorted(identities)))


def _lock_heads(session: Session, chain_ids: list[uuid.UUID]
                ) -> dict[uuid.UUID, tuple[int, bytes, datetime]]:
    insert_ignoring_conflicts(session, _heads, [
        {"chain_id": key, "seq": 0, "head_hash": chain.GENESIS, "last_created_at": EPOCH}
        for key in chain_ids])
    dialect = session.get_bind().dialect.name
    rows = session.execute(
        sa.select(_heads.c.chain_id, _heads.c.seq, _heads.c.head_hash, _heads.c.last_created_at)
        .where(id_in(_heads.c.chain_id, chain_ids, dialect))
        .order_by(_heads.c.chain_id)
        .with_for_update()
    ).all()
    return {row.chain_id: (row.seq, bytes(row.head_hash), row.last_created_at) for row in rows}


def insert_entries(session: Session, entries: list[dict[str, Any]]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        partitions.insert_entries(session, entries)
    else:
        session.execute(sa.insert(AUDIT_ENTRIES), entries)


def _entry_of(row: Any) -> dict[str, Any]:
    return {
        "chain_id": chain.chain_of(row.tenant_id),
        "event_id": row.id,
        "type": row.type,
        "outcome": chain.outcome_of(row.type),
        "tenant_id": row.tenant_id,
        "actor_account_id": row.actor_account_id,
        "subject": row.subject,
        "ip": chain.normal_ip(row.ip),
        "user_agent": row.user_agent,
        "request_id": row.request_id,
        "metadata": row.payload,
        "occurred_at": row.occurred_at,
    }


def _outbox_row(entry: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    def as_uuid(value: Any) -> uuid.UUID | None:
        return uuid.UUID(str(value)) if value else None

    return {
        "id": uuid.UUID(str(entry["id"])),
        "type": str(entry["type"]),
        "tenant_id": as_uuid(entry.get("tenant_id")),
        "actor_account_id": as_uuid(entry.get("actor_account_id")),
        "subject": entry.get("subject"),
        "payload": dict(entry.get("payload") or {}),
        "request_id": entry.get("request_id"),
        "ip": entry.get("ip"),
        "user_agent": entry.get("user_agent"),
        "occurred_at": datetime.fromisoformat(entry["occurred_at"]),
        # Security entries have no handlers: nothing for the relay to publish.
        "dispatched_at": now,
        "audited_at": now,
        "attempts": 0,
    }
