"""A practice's first day: invitations that can be resent and expire, e-mail changes.

Revision ID: 0007_first_day
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.db import UTCDateTime

revision: str = "0007_first_day"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "accepted_at IS NULL AND revoked_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("invitations") as batch:
        batch.add_column(sa.Column("last_sent_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("send_count", sa.Integer(), nullable=False,
                                   server_default="1"))
        batch.add_column(sa.Column("renewal_requested_at", UTCDateTime(), nullable=True))
    op.execute("UPDATE invitations SET last_sent_at = created_at")
    # One open invitation per address and practice from now on: older duplicates are withdrawn.
    op.execute("""
        UPDATE invitations SET revoked_at = created_at
        WHERE accepted_at IS NULL AND revoked_at IS NULL AND EXISTS (
            SELECT 1 FROM invitations newer
            WHERE newer.tenant_id = invitations.tenant_id AND newer.email = invitations.email
              AND newer.accepted_at IS NULL AND newer.revoked_at IS NULL
              AND newer.created_at > invitations.created_at)
    """)
    op.create_index("uq_invitations_open_email", "invitations", ["tenant_id", "email"],
                    unique=True, postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("new_email", sa.String(length=254), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("new_email")
    op.drop_index("uq_invitations_open_email", table_name="invitations")
    with op.batch_alter_table("invitations") as batch:
        batch.drop_column("renewal_requested_at")
        batch.drop_column("send_count")
        batch.drop_column("last_sent_at")
