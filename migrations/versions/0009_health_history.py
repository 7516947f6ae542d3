"""Health history: a sample per check per minute (kept 7 days) and health incidents (at most one
open per part, so an outage alerts the admins once).

Revision ID: 0009_health_history
Revises: 0008_audit_chain
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.db import UTCDateTime

revision: str = "0009_health_history"
down_revision: str | None = "0008_audit_chain"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "health_samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.Column("check", sa.String(40), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("detail", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_samples")),
    )
    op.create_index(op.f("ix_health_samples_taken_at"), "health_samples", ["taken_at"])
    op.create_index("ix_health_samples_check_taken_at", "health_samples", ["check", "taken_at"])
    op.create_table(
        "health_incidents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("part", sa.String(40), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("detail", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_incidents")),
    )
    op.create_index("uq_health_incidents_open_part", "health_incidents", ["part"], unique=True,
                    postgresql_where=sa.text("resolved_at IS NULL"),
                    sqlite_where=sa.text("resolved_at IS NULL"))


def downgrade() -> None:
    op.drop_index("uq_health_incidents_open_part", table_name="health_incidents")
    op.drop_table("health_incidents")
    op.drop_index("ix_health_samples_check_taken_at", table_name="health_samples")
    op.drop_index(op.f("ix_health_samples_taken_at"), table_name="health_samples")
    op.drop_table("health_samples")
