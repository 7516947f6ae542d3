"""A person's requests about their own data (GDPR articles 15, 17 and 20) and a practice's
legal holds on its clients' records.

A request belongs to the person, not to a practice: it spans every role account they hold.
`privacy_request_practices` says which practices it concerns, so that a practice owner (scoped
to their practice, by the ORM and by row-level security) sees their clients' requests.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, new_id
from core.scoping import TenantOwned


class RequestKind(StrEnum):
    EXPORT = "export"
    ERASURE = "erasure"


class RequestStatus(StrEnum):
    QUEUED = "queued"  # an export being built
    READY = "ready"  # an export waiting for its download
    DOWNLOADED = "downloaded"  # its single-use link was used
    SCHEDULED = "scheduled"  # an erasure in its cooling-off period
    CANCELLED = "cancelled"
    RESTRICTED = "restricted"  # erased, but some records are kept restricted under a hold
    COMPLETED = "completed"


class PrivacyRequest(Base):
    __tablename__ = "privacy_requests"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(sa.String(12))
    status: Mapped[str] = mapped_column(sa.String(12))
    # The person, while they exist; erasure replaces them with `pseudonym` (also the pseudonym
    # of their audit entries).
    identity_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    account_id: Mapped[uuid.UUID | None]  # the account that asked (links, notifications)
    pseudonym: Mapped[uuid.UUID | None]
    requested_at: Mapped[datetime]
    # GDPR: answered within a month.
    due_at: Mapped[datetime]
    # Erasure: when the cooling-off period ends, and when the reminder went out.
    scheduled_for: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    # Export: the ZIP in the file store and its single-use link.
    file_key: Mapped[str | None] = mapped_column(sa.String(300))
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    link_expires_at: Mapped[datetime | None]
    downloaded_at: Mapped[datetime | None]
    # Erasure under a hold: until when restricted records are kept, and what they are.
    kept_until: Mapped[datetime | None]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (
        sa.CheckConstraint("kind IN ('export', 'erasure')", name="kind"),
        sa.Index("ix_privacy_requests_open", "kind", "status", "scheduled_for"),
    )


class PrivacyRequestPractice(TenantOwned, Base):
    """A practice a request concerns (where the person held an account)."""

    __tablename__ = "privacy_request_practices"

    request_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("privacy_requests.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(primary_key=True, nullable=False)


class LegalHold(TenantOwned, Base):
    """A practice keeps a client's records, whatever the client asks, until it is lifted (or
    until `until`, when given)."""

    __tablename__ = "legal_holds"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    account_id: Mapped[uuid.UUID]  # the client account (the id outlives the account)
    reason: Mapped[str] = mapped_column(sa.String(500))
    placed_by_account_id: Mapped[uuid.UUID]
    placed_at: Mapped[datetime]
    until: Mapped[datetime | None]
    released_at: Mapped[datetime | None]


class RestrictedRecord(TenantOwned, Base):
    """What an erasure had to keep for a practice (a hold or its retention period): a snapshot
    nobody reads but a platform admin with a logged reason, erased when `kept_until` passes
    (or, with an open-ended hold, when the hold is lifted)."""

    __tablename__ = "restricted_records"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    request_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("privacy_requests.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    account_id: Mapped[uuid.UUID]
    hold_id: Mapped[uuid.UUID | None]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    kept_until: Mapped[datetime | None]


class AuditPseudonymisePermit(Base):
    """SQLite only: the one way past the audit log's UPDATE trigger, and only for personal
    columns (PostgreSQL has the `audit_pseudonymise` function instead). Inserted, used and
    removed in one transaction by `core.privacy.audit`."""

    __tablename__ = "audit_pseudonymise_permits"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
