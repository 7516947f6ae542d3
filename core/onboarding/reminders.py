"""Reminders for onboarding left unfinished: after a day idle, at most one a day, at most three,
only in the person's daytime, never after completion."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from core import clock
from core.events.types import EventType
from core.onboarding.models import OnboardingProgress
from core.onboarding.schemas import time_zones
from core.onboarding.stages import Stage
from core.uow import UnitOfWork

IDLE = timedelta(hours=24)
# "At most one a day", measured so that the hourly job can remind at the same local hour on
# consecutive days.
BETWEEN_REMINDERS = timedelta(hours=20)
MAX_REMINDERS = 3
DAYTIME = range(9, 18)  # local hours at which a reminder may go out
BATCH = 200


def local_hour(progress: OnboardingProgress, now: datetime) -> int:
    personal = (progress.data or {}).get(Stage.PERSONAL_INFO.value, {})
    zone = personal.get("time_zone")
    tz = ZoneInfo(zone) if zone in time_zones() else ZoneInfo("UTC")
    return now.astimezone(tz).hour


def record_due_reminders(uow: UnitOfWork, *, now: datetime | None = None) -> int:
    """Record one ONBOARDING_REMINDER_DUE per account that is due; returns how many."""
    now = now or clock.now()
    candidates = uow.session.execute(
        sa.select(OnboardingProgress)
        .where(OnboardingProgress.completed_at.is_(None),
               OnboardingProgress.updated_at < now - IDLE,
               OnboardingProgress.reminders_sent < MAX_REMINDERS,
               sa.or_(OnboardingProgress.last_reminder_at.is_(None),
                      OnboardingProgress.last_reminder_at < now - BETWEEN_REMINDERS))
        .order_by(OnboardingProgress.updated_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    due = [p for p in candidates if local_hour(p, now) in DAYTIME]
    for progress in due:
        progress.reminders_sent += 1
        progress.last_reminder_at = now
        uow.record(EventType.ONBOARDING_REMINDER_DUE, tenant_id=progress.tenant_id,
                   actor_account_id=progress.account_id,
                   subject=f"account:{progress.account_id}",
                   payload={"stage": progress.stage, "reminder": progress.reminders_sent})
    uow.commit()
    return len(due)
