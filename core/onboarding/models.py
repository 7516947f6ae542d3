from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.caching import ONBOARDING, PRACTICE_HOMES, Invalidation, changed
from core.db import Base, new_id
from core.onboarding.schemas import answered_zone
from core.onboarding.stages import Stage
from core.scoping import TenantOwned


class OnboardingProgress(TenantOwned, Base):
    __tablename__ = "onboarding_progress"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), unique=True
    )
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(sa.String(16))
    stage: Mapped[str] = mapped_column(sa.String(24))
    # Drafts per stage, as typed: {"PERSONAL_INFO": {"full_name": "…", …}, …}
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Optimistic concurrency: a save names the version it started from.
    version: Mapped[int] = mapped_column(default=1)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    terms_version: Mapped[str | None] = mapped_column(sa.String(32))
    terms_accepted_at: Mapped[datetime | None]
    terms_ip: Mapped[str | None] = mapped_column(sa.String(45))
    reminders_sent: Mapped[int] = mapped_column(default=0)
    last_reminder_at: Mapped[datetime | None]

    def cached_under(self) -> Iterator[Invalidation]:
        # Auto-saves change only the drafts: the cached stage stays right, unless they change
        # the time zone the person reads times in.
        if changed(self, "stage", "completed_at", "terms_version", "account_id") \
                or self._drafts_changed(answered_zone):
            yield ONBOARDING.key(self.account_id)
        # A practice's dashboards show its clients' set-up progress and its therapists'
        # professional answers (core.identity.queries.practice_home), not anyone's personal
        # details: a client typing their phone number leaves the therapist's page cached.
        if self.tenant_id is not None and (changed(self, "stage", "completed_at")
                                           or self._drafts_changed(_professional_answers)):
            yield PRACTICE_HOMES.key(self.tenant_id)

    def _drafts_changed(self, shown: Callable[[dict[str, Any] | None], object]) -> bool:
        """Whether this flush changed what `shown` takes from the drafts."""
        history = sa.inspect(self).attrs.data.history
        if not history.has_changes():
            return False
        before = history.deleted[0] if history.deleted else None
        return shown(before) != shown(self.data)

    __table_args__ = (
        # The reminder job reads only unfinished progress.
        sa.Index("ix_onboarding_progress_unfinished", "updated_at",
                 postgresql_where=sa.text("completed_at IS NULL"),
                 sqlite_where=sa.text("completed_at IS NULL")),
    )


def _professional_answers(data: dict[str, Any] | None) -> object:
    return (data or {}).get(Stage.PROFESSIONAL_INFO.value)
