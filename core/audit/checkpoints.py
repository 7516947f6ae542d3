"""Signed checkpoints: the heads of the chains at a moment, HMAC-SHA256 with AUDIT_SIGNING_KEY.

A chain proves that nothing inside it changed, but not that its newest entries are all there:
cut the tail off and what remains still verifies. A checkpoint, kept in the database and sent to
the external sink, remembers how far each chain had reached, so a shorter chain shows. Each
checkpoint lists only the chains that moved since the one before; "retention" checkpoints mark
where chains continue after their oldest months were archived and dropped. Someone who can cut a
chain's tail can usually delete the database's checkpoints too: the sink's copies
(`from_sink_records`) are what verification trusts then.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.audit.chain import canonical, timestamp
from core.audit.models import AuditChain, AuditCheckpoint
from core.uow import UnitOfWork

# A writer's transaction that took its time before the last checkpoint read the heads is still
# covered by the next one: chains that moved this long before it are listed again.
OVERLAP = timedelta(minutes=5)


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"audit-key-id:" + key).hexdigest()[:16]


def document(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """What is signed, and what the sink receives (with the signature beside it)."""
    return {"format": "audit-checkpoint/1", "id": checkpoint.id, "kind": checkpoint.kind,
            "created_at": timestamp(checkpoint.created_at), "heads": checkpoint.heads,
            "key_id": checkpoint.key_id}


def signature_of(key: bytes, checkpoint: AuditCheckpoint) -> str:
    body = {k: v for k, v in document(checkpoint).items() if k != "id"}
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def is_genuine(key: bytes, checkpoint: AuditCheckpoint) -> bool:
    return hmac.compare_digest(signature_of(key, checkpoint), checkpoint.signature)


def sign_heads(uow: UnitOfWork, key: bytes, *, full: bool = False) -> AuditCheckpoint | None:
    """Checkpoint the chains that moved since the last checkpoint (every chain if `full`);
    None when none did."""
    session = uow.session
    previous = session.execute(
        sa.select(sa.func.max(AuditCheckpoint.created_at)).where(AuditCheckpoint.kind == "hourly")
    ).scalar()
    query = sa.select(AuditChain.chain_id, AuditChain.seq, AuditChain.head_hash).where(
        AuditChain.seq > 0)
    if previous is not None and not full:
        query = query.where(AuditChain.last_created_at >= previous - OVERLAP)
    heads = {str(row.chain_id): [row.seq, bytes(row.head_hash).hex()]
             for row in session.execute(query)}
    if not heads:
        uow.rollback()
        return None
    checkpoint = record(uow, key, "hourly", heads)
    uow.commit()
    return checkpoint


def record(uow: UnitOfWork, key: bytes, kind: str,
           heads: dict[str, list[Any]]) -> AuditCheckpoint:
    checkpoint = AuditCheckpoint(kind=kind, created_at=clock.now(), heads=heads,
                                 key_id=key_id(key), signature="")
    checkpoint.signature = signature_of(key, checkpoint)
    uow.session.add(checkpoint)
    uow.session.flush()
    return checkpoint


@dataclass(frozen=True)
class Seen:
    """The furthest point a genuine checkpoint saw a chain at."""

    seq: int
    hash: bytes
    at: datetime
    checkpoint_id: int


@dataclass
class Checkpoints:
    latest: dict[uuid.UUID, Seen]
    # Where chains restart after retention: {chain: {seq of the last dropped entry: its hash}}.
    anchors: dict[uuid.UUID, dict[int, bytes]]
    forged: list[AuditCheckpoint]


class UnreadableCheckpoint(ValueError):
    """A line that should be a checkpoint as the sink received it, and is not."""


def from_sink_records(lines: Iterable[bytes]) -> list[AuditCheckpoint]:
    """The checkpoints among records as the external sink received them (JSON Lines in UTF-8,
    one record each; entries and blank lines are skipped), as unsaved checkpoints to verify
    with."""
    found = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
            if record.get("kind") != "checkpoint":
                continue
            document, signature = record["checkpoint"], record["signature"]
            found.append(AuditCheckpoint(
                id=int(document["id"]), kind=str(document["kind"]),
                created_at=datetime.fromisoformat(document["created_at"]),
                heads=dict(document["heads"]), key_id=str(document["key_id"]),
                signature=str(signature)))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise UnreadableCheckpoint(f"line {number} is not a record as the sink received "
                                       f"it ({type(error).__name__}: {error})") from None
    return found


def load(session: Session, key: bytes, chain_id: uuid.UUID | None = None, *,
         kept_elsewhere: Sequence[AuditCheckpoint] = ()) -> Checkpoints:
    """The genuine checkpoints' findings: the database's and those `kept_elsewhere` (the
    sink's copies), whichever saw a chain furthest."""
    found = Checkpoints(latest={}, anchors={}, forged=[])
    stored = list(session.execute(
        sa.select(AuditCheckpoint).order_by(AuditCheckpoint.id)).scalars())
    for checkpoint in [*stored, *kept_elsewhere]:
        if not is_genuine(key, checkpoint):
            found.forged.append(checkpoint)
            continue
        for raw_chain, (seq, head_hex) in checkpoint.heads.items():
            chain = uuid.UUID(raw_chain)
            if chain_id is not None and chain != chain_id:
                continue
            head = bytes.fromhex(head_hex)
            if checkpoint.kind == "retention":
                found.anchors.setdefault(chain, {})[int(seq)] = head
            seen = found.latest.get(chain)
            if seen is None or seq > seen.seq:
                found.latest[chain] = Seen(int(seq), head, checkpoint.created_at, checkpoint.id)
    return found
