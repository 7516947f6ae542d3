"""Rolled-up figures (`metric_points`), the rollup's watermark, and the indexes the rollup reads.

A point is keyed by (metric, scope, grain, bucket, dimension). `scope` is "platform" or the
practice's id; `tenant_id` says the same for the walls (the ORM's tenant scoping and row-level
security): NULL for platform points, which a practice's session therefore never sees. The key
cannot use `tenant_id` itself: NULLs never conflict, so an UPSERT of a platform point would
insert a second row instead of updating the first.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from core.events.models import EVENTS, DeadLetter
from core.identity.models import Account, Invitation
from core.metrics.names import COUNTED_EVENT_TYPES, SIGN_IN_TYPES
from core.onboarding.models import OnboardingProgress
from core.scoping import TenantOwned

SCOPE_OF_TENANT = "COALESCE(CAST(tenant_id AS VARCHAR(36)), 'platform')"


class MetricPoint(TenantOwned, Base):
    """One figure in one bucket. On PostgreSQL its pages are kept 70 % full (migration 0014),
    so a rollup's updates stay on their page and leave the key's index alone."""

    __tablename__ = "metric_points"

    metric: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    scope: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    grain: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)  # start of the hour or day, UTC
    # A role, "role:STAGE", a queue; "" for none.
    dimension: Mapped[str] = mapped_column(sa.String(48), primary_key=True)
    # No foreign key: points outlive the practice, like audit entries.
    tenant_id: Mapped[uuid.UUID | None]
    value: Mapped[float] = mapped_column(sa.Float)
    computed_at: Mapped[datetime]

    __table_args__ = (
        sa.CheckConstraint(f"scope = {SCOPE_OF_TENANT}", name="scope_is_tenant"),
        sa.CheckConstraint("grain IN ('hour', 'day')", name="grain"),
    )


class MetricRollup(Base):
    """How far the points are complete: the watermark, advanced in the same transaction as the
    points it covers. One row per rollup (today only "points")."""

    __tablename__ = "metric_rollups"

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    as_of: Mapped[datetime | None]
    full_as_of: Mapped[datetime | None]  # the last rollup that recomputed every level
    updated_at: Mapped[datetime | None]


def _type_in(types: tuple[str, ...]) -> sa.TextClause:
    listed = ", ".join(f"'{name}'" for name in types)
    return sa.text(f"type IN ({listed})")


# The incremental rollup reads only what happened since its last run; each of these lets it
# find those rows without reading the table. (The last one serves the full rollup.)
ROLLUP_INDEXES = (
    # Sign-ups since the watermark (and the accounts created after a full rollup's cut-off).
    sa.Index("ix_accounts_created_at", Account.__table__.c.created_at),
    # Invitations whose 7 days ran out since the watermark.
    sa.Index("ix_invitations_expires_at", Invitation.__table__.c.expires_at),
    sa.Index("ix_dead_letters_failed_at", DeadLetter.__table__.c.failed_at),
    # The events the rollup counts, by kind and time: a part of a large table, of which each
    # query wants a few kinds only.
    sa.Index("ix_events_counted_type_occurred", EVENTS.c.type, EVENTS.c.occurred_at,
             postgresql_where=_type_in(COUNTED_EVENT_TYPES),
             sqlite_where=_type_in(COUNTED_EVENT_TYPES)),
    # An account's previous sign-in: did it just become active, or was it already?
    sa.Index("ix_events_sign_ins_account", EVENTS.c.actor_account_id, EVENTS.c.occurred_at,
             postgresql_where=_type_in(SIGN_IN_TYPES), sqlite_where=_type_in(SIGN_IN_TYPES)),
    # People per practice and role who have not finished their onboarding: a full rollup counts
    # them from this index alone (the finished, most of the table, are everyone else).
    sa.Index("ix_onboarding_progress_unfinished_tenant", OnboardingProgress.__table__.c.tenant_id,
             OnboardingProgress.__table__.c.role,
             postgresql_where=sa.text("completed_at IS NULL"),
             sqlite_where=sa.text("completed_at IS NULL")),
)
