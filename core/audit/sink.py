"""Feeding the external sink: every entry at least once, in order within its chain.

A cursor per chain says how far the sink has it. A chain's sequence numbers are taken under its
head's lock and committed in that order, so "everything after the cursor" never skips an entry
that commits late (the trap of a high-water mark over ids). A delivery locks the cursors it
advances (`SKIP LOCKED`: two workers never send the same chain at once), sends the batch, then
moves the cursors and commits. A worker that dies after sending and before committing sends
that batch again: the sink de-duplicates by each record's id. Checkpoints travel the same way,
on a cursor of their own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.adapters.audit_sink import AuditSink
from core.audit import checkpoints
from core.audit.chain import timestamp
from core.audit.models import AUDIT_ENTRIES, AuditChain, AuditCheckpoint, AuditSinkCursor
from core.db import insert_ignoring_conflicts
from core.uow import UnitOfWork

SINK_BATCH = 500
CHAINS_PER_ROUND = 50
# The checkpoints' own cursor, under an id no chain has (practices' ids are random UUIDs).
CHECKPOINTS = uuid.UUID(int=1)
_cursors: sa.Table = AuditSinkCursor.__table__  # type: ignore[assignment]


def deliver_pending(uow: UnitOfWork, sink: AuditSink, *, batch: int = SINK_BATCH,
                    max_rounds: int = 20) -> int:
    """Send what the sink has not had yet; returns how many records went."""
    sent = _deliver_checkpoints(uow, sink)
    for _ in range(max_rounds):
        delivered = _deliver_round(uow, sink, batch)
        sent += delivered
        if delivered == 0:
            break
    return sent


def _behind(session: Session, limit: int) -> list[uuid.UUID]:
    position = sa.func.coalesce(AuditSinkCursor.position, 0)
    return list(session.execute(
        sa.select(AuditChain.chain_id)
        .outerjoin(AuditSinkCursor, AuditSinkCursor.chain_id == AuditChain.chain_id)
        .where(AuditChain.seq > position)
        .order_by(AuditChain.chain_id).limit(limit)).scalars())


def _lock(session: Session, streams: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    insert_ignoring_conflicts(session, _cursors, [
        {"chain_id": stream, "position": 0, "delivered_at": clock.now()} for stream in streams])
    rows = session.execute(
        sa.select(AuditSinkCursor.chain_id, AuditSinkCursor.position)
        .where(AuditSinkCursor.chain_id.in_(streams)).order_by(AuditSinkCursor.chain_id)
        .with_for_update(skip_locked=True)).all()
    return {row.chain_id: row.position for row in rows}


def _deliver_round(uow: UnitOfWork, sink: AuditSink, batch: int) -> int:
    session = uow.session
    chains = _behind(session, CHAINS_PER_ROUND)
    if not chains:
        uow.rollback()
        return 0
    positions = _lock(session, chains)
    records: list[dict[str, Any]] = []
    moved: dict[uuid.UUID, int] = {}
    for chain in chains:
        if chain not in positions or len(records) >= batch:
            continue  # another worker is sending this chain
        rows = session.execute(
            sa.select(AUDIT_ENTRIES).where(AUDIT_ENTRIES.c.chain_id == chain,
                                           AUDIT_ENTRIES.c.seq > positions[chain])
            .order_by(AUDIT_ENTRIES.c.seq).limit(batch - len(records))).mappings().all()
        records.extend(as_sink_record(row) for row in rows)
        if rows:
            moved[chain] = rows[-1]["seq"]
    if not records:
        uow.rollback()
        return 0
    sink.send(records)
    _advance(session, moved)
    uow.commit()
    return len(records)


def _advance(session: Session, moved: dict[uuid.UUID, int]) -> None:
    now = clock.now()
    for stream, position in moved.items():
        session.execute(sa.update(_cursors).where(_cursors.c.chain_id == stream)
                        .values(position=position, delivered_at=now))


def _deliver_checkpoints(uow: UnitOfWork, sink: AuditSink) -> int:
    session = uow.session
    position = _lock(session, [CHECKPOINTS]).get(CHECKPOINTS)
    if position is None:  # another worker is sending them
        uow.rollback()
        return 0
    pending = list(session.execute(
        sa.select(AuditCheckpoint).where(AuditCheckpoint.id > position)
        .order_by(AuditCheckpoint.id).limit(100)).scalars())
    if not pending:
        uow.rollback()
        return 0
    sink.send([{"kind": "checkpoint", "id": f"checkpoint:{c.id}",
                "checkpoint": checkpoints.document(c), "signature": c.signature}
               for c in pending])
    _advance(session, {CHECKPOINTS: pending[-1].id})
    uow.commit()
    return len(pending)


def as_sink_record(row: Any) -> dict[str, Any]:
    return {
        "kind": "entry", "id": str(row["event_id"]), "chain_id": str(row["chain_id"]),
        "seq": row["seq"], "prev_hash": bytes(row["prev_hash"]).hex(),
        "hash": bytes(row["hash"]).hex(), "type": row["type"], "outcome": row["outcome"],
        "practice_id": str(row["tenant_id"]) if row["tenant_id"] else None,
        "actor_account_id": str(row["actor_account_id"]) if row["actor_account_id"] else None,
        "subject": row["subject"], "ip": str(row["ip"]) if row["ip"] else None,
        "user_agent": row["user_agent"], "request_id": row["request_id"],
        "metadata": row["metadata"], "occurred_at": timestamp(row["occurred_at"]),
        "recorded_at": timestamp(row["created_at"]),
        "personal_digest": bytes(row["personal_digest"]).hex(),
    }


@dataclass(frozen=True)
class SinkLag:
    entries: int
    chains: int
    oldest_age_seconds: float | None


def lag(session: Session) -> SinkLag:
    """How far the sink is behind: entries not yet delivered and the age of the oldest."""
    position = sa.func.coalesce(AuditSinkCursor.position, 0)
    behind = (sa.select(AuditChain.chain_id, AuditChain.seq, position.label("position"))
              .outerjoin(AuditSinkCursor, AuditSinkCursor.chain_id == AuditChain.chain_id)
              .where(AuditChain.seq > position).subquery())
    chains, entries = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(behind.c.seq - behind.c.position),
                                                    0))).one()
    oldest = session.execute(
        sa.select(sa.func.min(AUDIT_ENTRIES.c.created_at)).select_from(behind).join(
            AUDIT_ENTRIES, sa.and_(AUDIT_ENTRIES.c.chain_id == behind.c.chain_id,
                                   AUDIT_ENTRIES.c.seq == behind.c.position + 1))).scalar()
    age = (clock.now() - oldest).total_seconds() if oldest is not None else None
    return SinkLag(entries=int(entries), chains=int(chains), oldest_age_seconds=age)
