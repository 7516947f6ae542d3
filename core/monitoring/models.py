"""Health history: one sample per check per minute (kept 7 days), and the incidents opened when
a part fails (one alert when it opens, one when it resolves)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, new_id


class HealthSample(Base):
    __tablename__ = "health_samples"
    __table_args__ = (sa.Index("ix_health_samples_check_taken_at", "check", "taken_at"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    taken_at: Mapped[datetime] = mapped_column(index=True)
    check: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(8))  # pass | warn | fail
    latency_ms: Mapped[float] = mapped_column(sa.Float)
    detail: Mapped[str | None] = mapped_column(sa.String(300))


class HealthIncident(Base):
    """A part down (its check failing), or dead letters waiting. At most one open per part: the
    partial unique index makes a second opener lose, so admins hear of it once."""

    __tablename__ = "health_incidents"
    __table_args__ = (sa.Index("uq_health_incidents_open_part", "part", unique=True,
                               postgresql_where=sa.text("resolved_at IS NULL"),
                               sqlite_where=sa.text("resolved_at IS NULL")),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    part: Mapped[str] = mapped_column(sa.String(40))  # a check's name, or "dead_letters"
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(sa.String(300))
