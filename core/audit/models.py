from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from core.scoping import TenantOwned


class AuditEntry(TenantOwned, Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # The event (or direct security entry) it came from: a redelivery inserts nothing new.
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    type: Mapped[str] = mapped_column(sa.String(64))
    tenant_id: Mapped[uuid.UUID | None]
    actor_account_id: Mapped[uuid.UUID | None]
    subject: Mapped[str | None] = mapped_column(sa.String(120))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str | None] = mapped_column(sa.String(400))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime]

    __table_args__ = (
        sa.Index("ix_audit_entries_tenant_created", "tenant_id", "created_at"),
        sa.Index("ix_audit_entries_actor_created", "actor_account_id", "created_at"),
        sa.Index("ix_audit_entries_type_created", "type", "created_at"),
        sa.Index("ix_audit_entries_subject_created", "subject", "created_at"),
    )
