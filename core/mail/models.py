"""What was sent to whom, and what was held back: the record per-recipient allowances count."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, new_id


class MailLog(Base):
    """One row per e-mail an event asked for. The recipient is kept only as a hash: enough to
    count what one address received, nothing to read it back from."""

    __tablename__ = "mail_log"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    recipient_hash: Mapped[str] = mapped_column(sa.String(64))
    # The template: verify_email, password_reset, signup_exists …
    kind: Mapped[str] = mapped_column(sa.String(40))
    event_id: Mapped[uuid.UUID | None]
    # sent | suppressed (over the recipient's allowance)
    status: Mapped[str] = mapped_column(sa.String(12))
    created_at: Mapped[datetime]

    __table_args__ = (
        sa.CheckConstraint("status IN ('sent', 'suppressed')", name="status"),
        sa.Index("ix_mail_log_recipient_created", "recipient_hash", "created_at"),
    )
