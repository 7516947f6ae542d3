from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.adapters.notifications import NotificationBus
from core.caching import UNREAD, CachedRegions, CacheKey, invalidate_after_commit
from core.db import insert_ignoring_conflicts
from core.errors import NotFound
from core.notifications.models import Notification
from core.scoping import crossing_tenants
from core.uow import UnitOfWork


def notify(
    uow: UnitOfWork,
    bus: NotificationBus,
    *,
    account_id: uuid.UUID,
    tenant_id: uuid.UUID | None,
    kind: str,
    title: str,
    body: str = "",
    link: str | None = None,
    source_event_id: uuid.UUID | None = None,
) -> None:
    """Store a notification; once committed, wake the account's open streams."""
    invalidate_after_commit(uow.session, UNREAD.key(account_id))
    insert_ignoring_conflicts(
        uow.session,
        Notification.__table__,  # type: ignore[arg-type]
        [{"id": uuid.uuid4(), "account_id": account_id, "tenant_id": tenant_id, "kind": kind,
          "title": title, "body": body, "link": link, "source_event_id": source_event_id,
          "created_at": clock.now()}],
    )
    uow.after_commit(lambda: bus.publish(str(account_id)))


def since(
    session: Session, account_id: uuid.UUID, after: datetime | None, *, limit: int = 20,
    unread_only: bool = False,
) -> Sequence[Notification]:
    query = sa.select(Notification).where(Notification.account_id == account_id)
    if after is not None:
        query = query.where(Notification.created_at > after)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return session.execute(
        query.order_by(Notification.created_at.desc()).limit(limit)
    ).scalars().all()[::-1]


def mark_read(session: Session, account_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> int:
    """How many of them were unread until now (the bell's count falls by that much)."""
    invalidate_after_commit(session, UNREAD.key(account_id))
    result = session.execute(
        sa.update(Notification)
        .where(Notification.account_id == account_id, Notification.id.in_(ids),
               Notification.read_at.is_(None))
        .values(read_at=clock.now())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def unread_count(session: Session, regions: CachedRegions, account_id: uuid.UUID) -> int:
    """The bell's count: cached per account, gone stale as soon as a notification for it is
    stored or read (every write of them below says so)."""
    return int(regions.get(*unread_entry(session, account_id)))


def unread_entry(session: Session, account_id: uuid.UUID
                 ) -> tuple[CacheKey, Callable[[], int]]:
    """The count's cache key and how to read it (for a request's prefetch)."""
    return UNREAD.key(account_id), lambda: _count_unread(session, account_id)


def _count_unread(session: Session, account_id: uuid.UUID) -> int:
    # Read across tenants: a request prefetches it before its practice is set (core.identity.
    # sessions), and the account id comes from its own session.
    with crossing_tenants(session):
        return int(session.execute(
            sa.select(sa.func.count()).select_from(Notification)
            .where(Notification.account_id == account_id, Notification.read_at.is_(None))
        ).scalar_one())


def inbox_page(session: Session, account_id: uuid.UUID, *, before: datetime | None = None,
               limit: int = 30) -> tuple[Sequence[Notification], datetime | None]:
    """Newest first; the second value is where the next (older) page starts, if there is one."""
    query = sa.select(Notification).where(Notification.account_id == account_id)
    if before is not None:
        query = query.where(Notification.created_at < before)
    found = session.execute(
        query.order_by(Notification.created_at.desc()).limit(limit + 1)
    ).scalars().all()
    older = found[limit - 1].created_at if len(found) > limit else None
    return found[:limit], older


def mark_all_read(session: Session, account_id: uuid.UUID) -> None:
    invalidate_after_commit(session, UNREAD.key(account_id))
    session.execute(
        sa.update(Notification)
        .where(Notification.account_id == account_id, Notification.read_at.is_(None))
        .values(read_at=clock.now())
    )


def read_one(session: Session, account_id: uuid.UUID, notification_id: uuid.UUID) -> Notification:
    """Mark one of the account's notifications read and return it (anyone else's: NotFound)."""
    found = session.execute(
        sa.select(Notification).where(Notification.account_id == account_id,
                                      Notification.id == notification_id)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("That notification is not in your inbox.")
    if found.read_at is None:
        found.read_at = clock.now()
        invalidate_after_commit(session, UNREAD.key(account_id))
    return found
