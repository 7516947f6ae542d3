"""Mail log: every e-mail an event asked for, sent or suppressed, for per-recipient allowances.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.db import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recipient_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('sent', 'suppressed')", name=op.f("ck_mail_log_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_log")),
    )
    op.create_index("ix_mail_log_recipient_created", "mail_log",
                    ["recipient_hash", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_mail_log_recipient_created", table_name="mail_log")
    op.drop_table("mail_log")
