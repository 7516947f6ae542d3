"""Each account keeps the time of its last sign-in, so the active-people figures count accounts,
not a month of sign-in events.

A full metrics rollup grouped the last 30 days' USER_LOGIN and ROLE_SWITCHED events by account
(145,000 events into 116,000 accounts on the bench's platform: 340 to 480 ms, most of a full
rollup). The column is written in the transaction that records the sign-in event, with the
event's own time; the index holds the practice and role beside it, so the active figures are
counted from the index alone. Existing accounts get the time of their latest sign-in event.

Revision ID: 0013_last_sign_in
Revises: 0012_policy_initplans
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.db import UTCDateTime

revision: str = "0013_last_sign_in"
down_revision: str | None = "0012_policy_initplans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
    UPDATE accounts SET last_signed_in_at = latest.at
    FROM (SELECT actor_account_id, max(occurred_at) AS at FROM events
          WHERE type IN ('USER_LOGIN', 'ROLE_SWITCHED') AND actor_account_id IS NOT NULL
          GROUP BY actor_account_id) AS latest
    WHERE accounts.id = latest.actor_account_id
"""
BACKFILL_SQLITE = """
    UPDATE accounts SET last_signed_in_at = (
        SELECT max(occurred_at) FROM events
        WHERE type IN ('USER_LOGIN', 'ROLE_SWITCHED') AND actor_account_id = accounts.id)
"""


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("last_signed_in_at", UTCDateTime(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # Row-level security applies to the tables' owner too: the backfill sees every practice.
        op.execute("SELECT set_config('app.all_tenants', 'on', true)")
        op.execute(BACKFILL)
    else:
        op.execute(BACKFILL_SQLITE)
    op.create_index("ix_accounts_last_signed_in", "accounts", ["last_signed_in_at"],
                    postgresql_include=["tenant_id", "role"])


def downgrade() -> None:
    op.drop_index("ix_accounts_last_signed_in", table_name="accounts")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("last_signed_in_at")
