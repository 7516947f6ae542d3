"""Onboarding progress: stage, drafts, optimistic version, terms acceptance, reminders.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.db import JSONType, UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = """
    CREATE POLICY tenant_isolation ON onboarding_progress
    USING (
        current_setting('app.all_tenants', true) = 'on'
        OR tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
    )
    WITH CHECK (
        current_setting('app.all_tenants', true) = 'on'
        OR tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
    )
"""


def upgrade() -> None:
    op.create_table(
        "onboarding_progress",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=24), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("terms_version", sa.String(length=32), nullable=True),
        sa.Column("terms_accepted_at", UTCDateTime(), nullable=True),
        sa.Column("terms_ip", sa.String(length=45), nullable=True),
        sa.Column("reminders_sent", sa.Integer(), nullable=False),
        sa.Column("last_reminder_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE",
                                name=op.f("fk_onboarding_progress_account_id_accounts")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_onboarding_progress_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_progress")),
        sa.UniqueConstraint("account_id", name=op.f("uq_onboarding_progress_account_id")),
    )
    op.create_index(op.f("ix_onboarding_progress_tenant_id"), "onboarding_progress",
                    ["tenant_id"])
    op.create_index("ix_onboarding_progress_unfinished", "onboarding_progress", ["updated_at"],
                    postgresql_where=sa.text("completed_at IS NULL"),
                    sqlite_where=sa.text("completed_at IS NULL"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE onboarding_progress ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE onboarding_progress FORCE ROW LEVEL SECURITY")
        op.execute(POLICY)


def downgrade() -> None:
    op.drop_table("onboarding_progress")
