"""Reading the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.audit.models import AuditEntry
from core.caching import ACTIVITY, CachedRegions, CacheKey
from core.events.types import EventType
from core.scoping import crossing_tenants

SECURITY_ACTIVITY = (
    EventType.USER_LOGIN, EventType.LOGIN_FAILED, EventType.LOGOUT, EventType.ACCOUNT_LOCKED,
    EventType.ACCOUNT_UNLOCKED, EventType.PASSWORD_CHANGED, EventType.PASSWORD_RESET_REQUESTED,
    EventType.SESSION_REVOKED, EventType.ROLE_SWITCHED, EventType.EMAIL_VERIFIED,
    EventType.ACCOUNT_ADDED, EventType.EMAIL_CHANGED, EventType.PROFILE_UPDATED,
    EventType.MFA_ENROLLED, EventType.MFA_REMOVED, EventType.MFA_FAILED,
    EventType.RECOVERY_CODE_USED,
)


def security_activity(session: Session, identity_id: uuid.UUID,
                      *, limit: int = 10) -> Sequence[AuditEntry]:
    """A person's own security history, across all their accounts and practices."""
    with crossing_tenants(session):
        return session.execute(
            sa.select(AuditEntry)
            .where(AuditEntry.subject == f"identity:{identity_id}",
                   AuditEntry.type.in_([str(t) for t in SECURITY_ACTIVITY]))
            .order_by(AuditEntry.created_at.desc())
            .limit(limit)
        ).scalars().all()


@dataclass(frozen=True)
class ActivityLine:
    type: str
    occurred_at: datetime
    ip: str | None


def cached_security_activity(session: Session, regions: CachedRegions,
                             identity_id: uuid.UUID) -> list[ActivityLine]:
    """`security_activity` through the cache: the audit writer invalidates it when it writes an
    entry about this identity (core.audit.writer)."""
    stored = regions.get(*activity_entry(session, identity_id))
    return [ActivityLine(line["type"], datetime.fromisoformat(line["occurred_at"]), line["ip"])
            for line in stored]


def activity_entry(session: Session, identity_id: uuid.UUID
                   ) -> tuple[CacheKey, Callable[[], list[dict[str, str | None]]]]:
    def from_database() -> list[dict[str, str | None]]:
        return [{"type": e.type, "occurred_at": e.occurred_at.isoformat(), "ip": e.ip}
                for e in security_activity(session, identity_id)]

    return ACTIVITY.key(identity_id), from_database


def recent(session: Session, *, types: Sequence[str] | None = None,
           limit: int = 20) -> Sequence[AuditEntry]:
    """The newest entries the session may see (its tenant; every tenant for admins)."""
    query = sa.select(AuditEntry).order_by(AuditEntry.created_at.desc()).limit(limit)
    if types:
        query = query.where(AuditEntry.type.in_(list(types)))
    return session.execute(query).scalars().all()
