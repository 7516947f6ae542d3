"""The requests as the settings page, the admins and practice owners see them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.privacy.models import (
    PrivacyRequest,
    PrivacyRequestPractice,
    RequestKind,
    RequestStatus,
    RestrictedRecord,
)
from core.scoping import crossing_tenants
from core.tenancy.models import Tenant


@dataclass(frozen=True)
class RequestRow:
    request: PrivacyRequest
    practices: list[str]

    @property
    def overdue(self) -> bool:
        """Still unanswered past its deadline (a restricted erasure has been answered)."""
        return self.request.status in (RequestStatus.QUEUED, RequestStatus.SCHEDULED) \
            and self.request.due_at < clock.now()


def latest_export(session: Session, identity_id: uuid.UUID) -> PrivacyRequest | None:
    return session.execute(sa.select(PrivacyRequest).where(
        PrivacyRequest.identity_id == identity_id, PrivacyRequest.kind == RequestKind.EXPORT)
        .order_by(PrivacyRequest.requested_at.desc()).limit(1)).scalar_one_or_none()


def requests(session: Session, *, tenant_id: uuid.UUID | None = None,
             limit: int = 500) -> list[RequestRow]:
    """Every request (admins), or those concerning one practice (its owner), newest first."""
    query = sa.select(PrivacyRequest).order_by(PrivacyRequest.requested_at.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(PrivacyRequest.id.in_(
            sa.select(PrivacyRequestPractice.request_id).where(
                PrivacyRequestPractice.tenant_id == tenant_id)))
    found = list(session.execute(query).scalars())
    names: dict[uuid.UUID, list[str]] = {r.id: [] for r in found}
    if found:
        links = sa.select(PrivacyRequestPractice.request_id, Tenant.name).join(
            Tenant, Tenant.id == PrivacyRequestPractice.tenant_id).where(
            PrivacyRequestPractice.request_id.in_(list(names)))
        if tenant_id is not None:
            links = links.where(PrivacyRequestPractice.tenant_id == tenant_id)
            rows = session.execute(links).all()
        else:
            with crossing_tenants(session):
                rows = session.execute(links).all()
        for request_id, name in rows:
            names[request_id].append(name)
    return [RequestRow(r, sorted(names[r.id])) for r in found]


def restricted_records(session: Session) -> list[RestrictedRecord]:
    """For admins: what is kept restricted (ids and dates; the data only with a reason)."""
    with crossing_tenants(session):
        return list(session.execute(sa.select(RestrictedRecord).order_by(
            RestrictedRecord.created_at.desc())).scalars())
