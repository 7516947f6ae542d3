"""Which time zone a person reads times in: the one they gave when setting up (per account;
the account they use wins), else UTC. Admin accounts, which do not set up, borrow the zone of
the person's other accounts."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.identity.models import Account
from core.localtime import UTC_NAME
from core.onboarding.models import OnboardingProgress
from core.onboarding.schemas import answered_zone
from core.scoping import crossing_tenants


def time_zone_of(session: Session, identity_id: uuid.UUID,
                 account_id: uuid.UUID | None = None) -> str:
    with crossing_tenants(session):
        rows = session.execute(
            sa.select(Account.id, OnboardingProgress.data)
            .join(OnboardingProgress, OnboardingProgress.account_id == Account.id)
            .where(Account.identity_id == identity_id)
            .order_by(Account.created_at)
        ).all()
    zones = {row[0]: answered_zone(row[1]) for row in rows}
    if account_id is not None and zones.get(account_id):
        return zones[account_id] or UTC_NAME
    return next((zone for zone in zones.values() if zone), UTC_NAME)
