"""Metric points and the rollup's watermark; the indexes the incremental rollup reads by.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.db import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTED_EVENTS = ("type IN ('ONBOARDING_STARTED', 'ONBOARDING_STAGE_COMPLETED', "
                  "'ONBOARDING_COMPLETED', 'INVITATION_SENT', 'INVITATION_ACCEPTED', "
                  "'ONBOARDING_REOPENED', 'USER_LOGIN', 'ROLE_SWITCHED')")
SIGN_INS = "type IN ('USER_LOGIN', 'ROLE_SWITCHED')"

# Per-practice points are the practice's own figures: the same wall as every tenant-owned
# table. Platform points (tenant_id NULL) match no practice, so only a session that sees all
# tenants reads them.
POLICY = """
    CREATE POLICY tenant_isolation ON metric_points
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
        "metric_points",
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=36), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("bucket", UTCDateTime(), nullable=False),
        sa.Column("dimension", sa.String(length=48), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("scope = COALESCE(CAST(tenant_id AS VARCHAR(36)), 'platform')",
                           name=op.f("ck_metric_points_scope_is_tenant")),
        sa.CheckConstraint("grain IN ('hour', 'day')", name=op.f("ck_metric_points_grain")),
        sa.PrimaryKeyConstraint("metric", "scope", "grain", "bucket", "dimension",
                                name=op.f("pk_metric_points")),
    )
    op.create_table(
        "metric_rollups",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=True),
        sa.Column("full_as_of", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_metric_rollups")),
    )
    op.create_index("ix_accounts_created_at", "accounts", ["created_at"])
    op.create_index("ix_invitations_expires_at", "invitations", ["expires_at"])
    op.create_index("ix_dead_letters_failed_at", "dead_letters", ["failed_at"])
    op.create_index("ix_events_counted_type_occurred", "events", ["type", "occurred_at"],
                    postgresql_where=sa.text(COUNTED_EVENTS), sqlite_where=sa.text(COUNTED_EVENTS))
    op.create_index("ix_events_sign_ins_account", "events", ["actor_account_id", "occurred_at"],
                    postgresql_where=sa.text(SIGN_INS), sqlite_where=sa.text(SIGN_INS))
    op.create_index("ix_onboarding_progress_unfinished_tenant", "onboarding_progress",
                    ["tenant_id", "role"], postgresql_where=sa.text("completed_at IS NULL"),
                    sqlite_where=sa.text("completed_at IS NULL"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE metric_points ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE metric_points FORCE ROW LEVEL SECURITY")
        op.execute(POLICY)


def downgrade() -> None:
    op.drop_index("ix_onboarding_progress_unfinished_tenant", table_name="onboarding_progress")
    op.drop_index("ix_events_sign_ins_account", table_name="events")
    op.drop_index("ix_events_counted_type_occurred", table_name="events")
    op.drop_index("ix_dead_letters_failed_at", table_name="dead_letters")
    op.drop_index("ix_invitations_expires_at", table_name="invitations")
    op.drop_index("ix_accounts_created_at", table_name="accounts")
    op.drop_table("metric_rollups")
    op.drop_table("metric_points")
