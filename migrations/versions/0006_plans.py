"""Plans: each practice's request budget per minute, and a per-practice override.

Revision ID: 0006_plans
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_plans"
down_revision: str | None = "0007_first_day"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Per practice, all its accounts together (each account has its own 100 per minute besides).
PLANS = [
    {"name": "standard", "label": "Standard", "requests_per_minute": 1000},
    {"name": "group", "label": "Group practice", "requests_per_minute": 5000},
]


def upgrade() -> None:
    plans = op.create_table(
        "plans",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=60), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), nullable=False),
        sa.CheckConstraint("requests_per_minute > 0",
                           name=op.f("ck_plans_requests_per_minute_positive")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_plans")),
    )
    op.bulk_insert(plans, PLANS)
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("requests_per_minute", sa.Integer(), nullable=True))
        batch.create_check_constraint(
            op.f("ck_tenants_requests_per_minute_positive"),
            "requests_per_minute IS NULL OR requests_per_minute > 0")
        batch.create_foreign_key(op.f("fk_tenants_plan_plans"), "plans", ["plan"], ["name"])


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_constraint(op.f("fk_tenants_plan_plans"), type_="foreignkey")
        batch.drop_constraint(op.f("ck_tenants_requests_per_minute_positive"), type_="check")
        batch.drop_column("requests_per_minute")
    op.drop_table("plans")
