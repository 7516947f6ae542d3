"""The outbox (`events`), the record of completed effects (`handler_runs`) and dead letters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, new_id


class Event(Base):
    """A domain event, written in the same transaction as the change it describes."""

    __tablename__ = "events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(sa.String(64))
    tenant_id: Mapped[uuid.UUID | None]
    actor_account_id: Mapped[uuid.UUID | None]
    # What the event is about, e.g. "identity:<uuid>"; free text is never put in here.
    subject: Mapped[str | None] = mapped_column(sa.String(120))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str | None] = mapped_column(sa.String(400))
    occurred_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    audited_at: Mapped[datetime | None]
    # How many times the relay has published this event (the fast path does not count).
    attempts: Mapped[int] = mapped_column(default=0)

    __table_args__ = (
        # Both sweeps read only the small unfinished part of a large table.
        sa.Index(
            "ix_events_undispatched",
            "occurred_at",
            postgresql_where=sa.text("dispatched_at IS NULL"),
            sqlite_where=sa.text("dispatched_at IS NULL"),
        ),
        sa.Index(
            "ix_events_unaudited",
            "occurred_at",
            postgresql_where=sa.text("audited_at IS NULL"),
            sqlite_where=sa.text("audited_at IS NULL"),
        ),
        sa.Index("ix_events_tenant_occurred", "tenant_id", "occurred_at"),
    )


# The outbox as a plain table, for the hot paths where Core statements beat the ORM's machinery.
EVENTS: sa.Table = Event.__table__  # type: ignore[assignment]


class HandlerRun(Base):
    """One row per (event, handler): the idempotency key of every effect."""

    __tablename__ = "handler_runs"

    event_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    handler: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(16))  # running | done | dead
    attempts: Mapped[int] = mapped_column(default=0)
    # The broker message working on it, and until when that claim holds.
    message_id: Mapped[str | None] = mapped_column(sa.String(64))
    # The liveness token of the worker process holding the claim (core.adapters.liveness).
    holder: Mapped[int | None]
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class DeadLetter(Base):
    """A message that ran out of retries (or was given up on), kept so an operator can replay it."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    queue: Mapped[str] = mapped_column(sa.String(64))
    actor: Mapped[str] = mapped_column(sa.String(80))
    event_id: Mapped[uuid.UUID | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(default=0)
    message: Mapped[dict[str, Any]]
    failed_at: Mapped[datetime]
    retried_at: Mapped[datetime | None]
