"""Retention: months older than AUDIT_RETENTION_MONTHS leave the database, archived first.

For each expired month, oldest first: its entries are written to the file store
(`audit-archive/YYYY-MM.jsonl`, with row count and SHA-256 recorded in `audit_archives`); once
that succeeded (and the external sink has had them), a signed "retention" checkpoint records
where each chain stops in that month, and the month goes: on PostgreSQL its partition is dropped
through `audit_drop_partition` (which refuses a month within retention or not archived with the
same row count), on SQLite its rows are deleted past the trigger by a permit. Chains stay
verifiable: within a chain `created_at` never goes backwards, so a dropped month is a prefix of
each chain, and the retention checkpoint is where verification picks the chain up again.
The same daily run removes what writers killed mid-file left in the file store (exports,
archives), once nothing has written to it for ABANDONED_AFTER.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.audit import checkpoints, exports, partitions
from core.audit.models import AUDIT_ENTRIES, AuditArchive, AuditRetentionPermit
from core.audit.partitions import add_months, month_start
from core.audit.sink import lag
from core.audit.viewer import Filters
from core.events.types import EventType
from core.services import Services
from core.uow import UnitOfWork

log = logging.getLogger(__name__)
# Longer than any export or archive takes to write, so a live writer's file is never taken.
ABANDONED_AFTER = timedelta(hours=6)


@dataclass
class RetentionReport:
    archived: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # archived, but the sink is behind
    abandoned_files: int = 0  # partial files of writers killed mid-file, removed


def label(month: datetime) -> str:
    return month.strftime("%Y-%m")


def cutoff(now: datetime, months: int) -> datetime:
    """Months that start before this are past retention."""
    return add_months(month_start(now), -months)


def expired_months(session: Session, now: datetime, months: int) -> list[datetime]:
    limit = cutoff(now, months)
    if session.get_bind().dialect.name == "postgresql":
        return [month for month in partitions.existing_months(session) if month < limit]
    found: list[datetime] = []
    after: datetime | None = None
    while True:  # the months that hold entries, from one to the next
        query = sa.select(sa.func.min(AUDIT_ENTRIES.c.created_at))
        if after is not None:
            query = query.where(AUDIT_ENTRIES.c.created_at >= after)
        oldest = session.execute(query).scalar()
        if oldest is None or month_start(oldest) >= limit:
            return found
        found.append(month_start(oldest))
        after = add_months(found[-1], 1)


def apply(uow: UnitOfWork, services: Services, *, now: datetime | None = None
          ) -> RetentionReport:
    """Keep partitions ahead, then archive and drop every expired month. Each month commits on
    its own: a failure leaves the months before it done and itself untouched."""
    now = now or clock.now()
    settings = services.settings
    partitions.ensure_ahead(uow.session, now)
    uow.commit()
    report = RetentionReport()
    for month in expired_months(uow.session, now, settings.audit_retention_months):
        name = label(month)
        archive = uow.session.get(AuditArchive, name) or _archive(uow, services, month)
        report.archived.append(name)
        if services.audit_sink is not None and _sink_behind(uow.session, month):
            report.waiting.append(name)
            continue
        _drop(uow, settings.audit_key, month, archive, settings.audit_retention_months)
        report.dropped.append(name)
    uow.rollback()
    report.abandoned_files = services.files.remove_abandoned(now - ABANDONED_AFTER)
    return report


def _month_filters(month: datetime) -> Filters:
    return Filters(since=month, until=add_months(month, 1))


def _archive(uow: UnitOfWork, services: Services, month: datetime) -> AuditArchive:
    key = f"audit-archive/{label(month)}.jsonl"
    with services.files.writer(key) as out:
        written = exports.write(uow.session, _month_filters(month), "jsonl", out)
    archive = AuditArchive(month=label(month), file_key=key, rows=written.rows,
                           sha256=written.sha256, exported_at=clock.now())
    uow.session.add(archive)
    uow.commit()
    log.info("audit month %s archived to %s (%d entries)", archive.month, key, written.rows)
    return archive


def _sink_behind(session: Session, month: datetime) -> bool:
    """Whether an entry of the month has not reached the sink yet (it may not go before)."""
    behind = lag(session)
    return behind.entries > 0 and _oldest_undelivered(session) < add_months(month, 1)


def _oldest_undelivered(session: Session) -> datetime:
    from core.audit.models import AuditChain, AuditSinkCursor

    position = sa.func.coalesce(AuditSinkCursor.position, 0)
    oldest = session.execute(
        sa.select(sa.func.min(AUDIT_ENTRIES.c.created_at))
        .select_from(AuditChain)
        .outerjoin(AuditSinkCursor, AuditSinkCursor.chain_id == AuditChain.chain_id)
        .join(AUDIT_ENTRIES, sa.and_(AUDIT_ENTRIES.c.chain_id == AuditChain.chain_id,
                                     AUDIT_ENTRIES.c.seq == position + 1))).scalar()
    return oldest if oldest is not None else clock.now()


def _last_of_each_chain(session: Session, month: datetime) -> dict[str, list[Any]]:
    end = add_months(month, 1)
    last = (sa.select(AUDIT_ENTRIES.c.chain_id, sa.func.max(AUDIT_ENTRIES.c.seq).label("seq"))
            .where(AUDIT_ENTRIES.c.created_at >= month, AUDIT_ENTRIES.c.created_at < end)
            .group_by(AUDIT_ENTRIES.c.chain_id).subquery())
    rows = session.execute(
        sa.select(AUDIT_ENTRIES.c.chain_id, AUDIT_ENTRIES.c.seq, AUDIT_ENTRIES.c.hash)
        .join(last, sa.and_(last.c.chain_id == AUDIT_ENTRIES.c.chain_id,
                            last.c.seq == AUDIT_ENTRIES.c.seq))
        .where(AUDIT_ENTRIES.c.created_at >= month, AUDIT_ENTRIES.c.created_at < end)).all()
    return {str(row.chain_id): [row.seq, bytes(row.hash).hex()] for row in rows}


def _drop(uow: UnitOfWork, key: bytes, month: datetime, archive: AuditArchive,
          retention_months: int) -> None:
    session = uow.session
    heads = _last_of_each_chain(session, month)
    if heads:
        checkpoints.record(uow, key, "retention", heads)
    if session.get_bind().dialect.name == "postgresql":
        dropped = session.execute(sa.text("SELECT audit_drop_partition(:month, :months)"),
                                  {"month": month, "months": retention_months}).scalar_one()
    else:
        dropped = _delete_month(session, month)
    partitions.forget_month(session, month)
    archive.dropped_at = clock.now()
    uow.record(EventType.AUDIT_MONTH_DROPPED, subject=f"audit_month:{archive.month}",
               payload={"month": archive.month, "rows": dropped, "archive": archive.file_key,
                        "sha256": archive.sha256, "chains": len(heads)})
    uow.commit()
    log.info("audit month %s dropped (%d entries; archived in %s)", archive.month, dropped,
             archive.file_key)


def _delete_month(session: Session, month: datetime) -> int:
    """SQLite: past the DELETE trigger with a permit that lives only inside this transaction."""
    end = add_months(month, 1)
    permit = AuditRetentionPermit(before=end)
    session.add(permit)
    session.flush()
    in_month = sa.and_(AUDIT_ENTRIES.c.created_at >= month, AUDIT_ENTRIES.c.created_at < end)
    deleted = session.execute(sa.select(sa.func.count()).where(in_month)).scalar_one()
    session.execute(sa.delete(AUDIT_ENTRIES).where(in_month))
    session.delete(permit)
    session.flush()
    return int(deleted)
