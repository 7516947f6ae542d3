from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, new_id
from core.scoping import TenantOwned


class Notification(TenantOwned, Base):
    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID]
    tenant_id: Mapped[uuid.UUID | None]
    # One notification per (source event, kind): a redelivered handler adds nothing.
    source_event_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(sa.String(40))
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.String(2000), default="")
    link: Mapped[str | None] = mapped_column(sa.String(300))
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]

    __table_args__ = (
        sa.UniqueConstraint("source_event_id", "kind"),
        sa.Index("ix_notifications_account_created", "account_id", "created_at"),
    )
