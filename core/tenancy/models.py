from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.caching import PRACTICE_HOMES, PRACTICE_LIMITS, ROLES, Invalidation, WholeRegion, changed
from core.db import Base, new_id


class TenantStatus(StrEnum):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Tenant(Base):
    """A practice. Not itself tenant-owned: its public slug is looked up by join pages."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(sa.String(60), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    status: Mapped[str] = mapped_column(sa.String(16), default=TenantStatus.PROVISIONING)
    plan: Mapped[str] = mapped_column(sa.String(32), sa.ForeignKey("plans.name"),
                                      default="standard")
    # Requests per minute for the whole practice, set by a platform admin; None: the plan's.
    requests_per_minute: Mapped[int | None]
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    activated_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint("requests_per_minute IS NULL OR requests_per_minute > 0",
                           name="requests_per_minute_positive"),
    )

    def cached_under(self) -> Iterator[Invalidation]:
        yield PRACTICE_LIMITS.key(self.id)
        yield PRACTICE_HOMES.key(self.id)
        if changed(self, "name", "slug"):
            yield WholeRegion(ROLES)  # every member's role switcher names the practice


class Plan(Base):
    """What a practice may use: its request budget per minute, shared by all its accounts."""

    __tablename__ = "plans"

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(60))
    requests_per_minute: Mapped[int]

    __table_args__ = (
        sa.CheckConstraint("requests_per_minute > 0", name="requests_per_minute_positive"),
    )

    def cached_under(self) -> Iterator[Invalidation]:
        yield WholeRegion(PRACTICE_LIMITS)  # every practice on this plan
