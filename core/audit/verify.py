"""Verifying the audit log: every chain, entry by entry, against its hashes and the checkpoints.

Each chain is walked in sequence order. An entry whose recomputed hash differs was edited (or, if
it verifies under another sequence number, moved: reordered); a sequence number that jumps means
entries were deleted; a chain that ends before a signed checkpoint's head lost its tail. The
first problem of each chain is reported (what follows a break cannot be judged against it).
The walk trusts nothing the writer keeps for itself (`audit_chains`), only entries and genuine
checkpoints.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.audit import chain
from core.audit import checkpoints as checkpoint_store
from core.audit.chain import GENESIS, PLATFORM_CHAIN, timestamp
from core.audit.models import AUDIT_ENTRIES, AuditChain, AuditCheckpoint, AuditVerification
from core.scoping import crossing_tenants

WALK_BATCH = 2000
# How far from its place an entry that verifies under another sequence number is looked for.
REORDER_WINDOW = 64
_E = AUDIT_ENTRIES.c
_FIELDS = (_E.chain_id, _E.seq, _E.prev_hash, _E.hash, _E.event_id, _E.type, _E.outcome,
           _E.tenant_id, _E.request_id, _E.metadata, _E.occurred_at, _E.created_at,
           _E.personal_digest, _E.actor_account_id, _E.subject, _E.ip, _E.user_agent,
           _E.personal_salt)


@dataclass(frozen=True)
class Problem:
    chain_id: str
    seq: int
    kind: str  # edited | missing | reordered | duplicated | forged-checkpoint
    detail: str

    def describe(self) -> str:
        return f"seq {self.seq}: {self.kind} — {self.detail}"


@dataclass
class Report:
    chains: int = 0
    entries: int = 0
    erased: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


def verify(session: Session, key: bytes, *, tenant_id: uuid.UUID | None = None,
           kept_elsewhere: Sequence[AuditCheckpoint] = ()) -> Report:
    """Verify every chain (or only `tenant_id`'s) in a session that sees every practice, against
    the database's checkpoints and those `kept_elsewhere` (the sink's copies)."""
    report = Report()
    with crossing_tenants(session):
        only = chain.chain_of(tenant_id) if tenant_id else None
        known = checkpoint_store.load(session, key, only, kept_elsewhere=kept_elsewhere)
        report.problems.extend(
            Problem(str(PLATFORM_CHAIN), 0, "forged-checkpoint",
                    f"checkpoint #{c.id} of {timestamp(c.created_at)} does not verify with the "
                    "signing key (forged, altered, or signed with another key)")
            for c in known.forged)
        for chain_id in _chains(session, known, only):
            report.chains += 1
            problem = _walk(session, chain_id, known, report)
            if problem is not None:
                report.problems.append(problem)
    return report


def _chains(session: Session, known: checkpoint_store.Checkpoints,
            only: uuid.UUID | None) -> list[uuid.UUID]:
    if only is not None:
        return [only]
    ids = set(session.execute(sa.select(AuditChain.chain_id)).scalars())
    ids |= set(known.latest)
    return sorted(ids, key=lambda c: (c != PLATFORM_CHAIN, str(c)))


def _entries(session: Session, chain_id: uuid.UUID) -> Iterator[dict[str, Any]]:
    last = 0
    while True:
        rows = session.execute(
            sa.select(*_FIELDS).where(_E.chain_id == chain_id, _E.seq > last)
            .order_by(_E.seq).limit(WALK_BATCH)
        ).mappings().all()
        for row in rows:
            yield dict(row)
        if len(rows) < WALK_BATCH:
            return
        last = rows[-1]["seq"]


def _walk(session: Session, chain_id: uuid.UUID, known: checkpoint_store.Checkpoints,
          report: Report) -> Problem | None:
    name = str(chain_id)
    anchors = known.anchors.get(chain_id, {})
    expected_seq, expected_prev = 1, GENESIS
    previous: dict[str, Any] | None = None
    seen_hashes: dict[int, bytes] = {}
    needed = known.latest.get(chain_id)
    for entry in _entries(session, chain_id):
        report.entries += 1
        seq = entry["seq"]
        if previous is None and seq > 1 and anchors.get(seq - 1) == bytes(entry["prev_hash"]):
            expected_seq, expected_prev = seq, bytes(entry["prev_hash"])  # archived before it
        if previous is not None and seq == previous["seq"]:
            return Problem(name, seq, "duplicated", "two entries carry this sequence number")
        if seq > expected_seq:
            gap = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq} to {seq - 1}"
            return Problem(name, expected_seq, "missing",
                           f"entries {gap} are gone (deleted); the chain goes on at seq {seq}")
        stored = bytes(entry["hash"])
        if chain.entry_hash(entry) != stored:
            moved_from = _written_as(entry)
            if moved_from is not None:
                return Problem(name, seq, "reordered",
                               f"this entry was written as seq {moved_from}")
            return Problem(name, seq, "edited", "its content no longer matches its hash")
        if bytes(entry["prev_hash"]) != expected_prev:
            return Problem(name, seq - 1, "edited",
                           f"its hash is not the one seq {seq} recorded as its predecessor's")
        if entry["personal_salt"] is None:
            report.erased += 1
        elif chain.personal_digest(bytes(entry["personal_salt"]), entry) != bytes(
                entry["personal_digest"]):
            return Problem(name, seq, "edited",
                           "its personal fields (actor, subject, IP, user agent) no longer "
                           "match their digest")
        if needed is not None and seq == needed.seq:
            seen_hashes[seq] = stored
        previous, expected_seq, expected_prev = entry, seq + 1, stored
    return _against_checkpoint(name, needed, expected_seq - 1, seen_hashes, anchors)


def _against_checkpoint(name: str, needed: checkpoint_store.Seen | None, last_seq: int,
                        seen_hashes: dict[int, bytes], anchors: dict[int, bytes]
                        ) -> Problem | None:
    if needed is None or anchors.get(needed.seq) == needed.hash:
        return None  # (archived and dropped up to there: where the walk picked the chain up)
    if last_seq < needed.seq:
        return Problem(name, last_seq + 1, "missing",
                       f"the chain ends at seq {last_seq}, but the checkpoint signed "
                       f"{timestamp(needed.at)} saw it reach seq {needed.seq} (its tail was "
                       "cut off)")
    if seen_hashes.get(needed.seq) != needed.hash:
        return Problem(name, needed.seq, "edited",
                       f"its hash differs from the one checkpointed {timestamp(needed.at)}")
    return None


def _written_as(entry: dict[str, Any]) -> int | None:
    """The sequence number under which the entry's own hash verifies, if not its present one."""
    seq = int(entry["seq"])
    for offset in range(1, REORDER_WINDOW + 1):
        for candidate in (seq - offset, seq + offset):
            if candidate > 0 and chain.entry_hash({**entry, "seq": candidate}) == bytes(
                    entry["hash"]):
                return candidate
    return None


def record(session: Session, report: Report, *, tenant_id: uuid.UUID | None,
           started_at: Any) -> AuditVerification:
    verification = AuditVerification(
        tenant_id=tenant_id, started_at=started_at, finished_at=clock.now(), ok=report.ok,
        chains=report.chains, entries=report.entries,
        problems=[asdict(problem) for problem in report.problems[:50]])
    session.add(verification)
    return verification


def latest(session: Session) -> AuditVerification | None:
    return session.execute(
        sa.select(AuditVerification).where(AuditVerification.tenant_id.is_(None))
        .order_by(AuditVerification.finished_at.desc()).limit(1)).scalar_one_or_none()
