"""A handler run records which worker process holds its claim.

A broker that restarts hands unacknowledged messages out again, possibly to another worker
process while the first is still sending the e-mail. The claim's holder (a liveness token, see
core.adapters.liveness) lets the second delivery see that the first is alive and wait for it.

Revision ID: 0015_handler_run_holder
Revises: 0014_metric_points_fillfactor
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_handler_run_holder"
down_revision: str | None = "0014_metric_points_fillfactor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("handler_runs", sa.Column("holder", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("handler_runs") as batch:
        batch.drop_column("holder")
