"""Metric points leave room in their pages, so that a rollup's updates stay on the same page.

Every tick rewrites the current day's points it moved (a value and its time, never the key). On
a packed page PostgreSQL has to put the new version elsewhere and add it to the primary key
index as well; with a third of each page left free the update is a heap-only (HOT) one and the
index is not touched. The tick after 1,000 new events on the bench's platform: 134-142 ms
against 105-114 ms (median of five, `python -m bench.rollup_statements --rounds 5`, alternated).
The table stays small (one row per figure and bucket). SQLite has no such setting.

Revision ID: 0014_metric_points_fillfactor
Revises: 0013_last_sign_in
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_metric_points_fillfactor"
down_revision: str | None = "0013_last_sign_in"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE metric_points SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE metric_points RESET (fillfactor)")
