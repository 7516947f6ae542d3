"""People doing things in practices, through the real services, on a clock the test moves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from core import clock
from core.identity import invitations, login, signup
from core.identity.directory import account_for, identity_by_email
from core.identity.models import Account, Role
from core.metrics.models import MetricPoint
from core.onboarding import service as onboarding
from core.onboarding.stages import Stage
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from tests.support.factories import Practice, finish_onboarding
from tests.support.flows import PASSWORD


class MovableClock:
    """Replaces `core.clock.now`: time stands still until the test moves it."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def at(self, moment: datetime) -> None:
        self.moment = moment

    def advance(self, **delta: float) -> datetime:
        self.moment += timedelta(**delta)
        return self.moment


def client_signs_up(db, practice: Practice, email: str) -> Account:
    with UnitOfWork(db) as uow:
        signup.signup_client(uow, tenant_slug=practice.tenant.slug, display_name=email,
                              email=email, password=PASSWORD)
        identity = identity_by_email(uow.session, email)
        identity.email_verified_at = clock.now()
        uow.commit()
        return account_for(uow.session, identity.id, Role.CLIENT)


def moves_to(db, account: Account, stage: Stage) -> None:
    from tests.support.flows import PERSONAL_INFO

    with UnitOfWork(db, tenant=TenantContext.of(account.tenant_id)) as uow:
        values = PERSONAL_INFO if stage == Stage.TERMS else None
        onboarding.move(uow, account.id, stage, values=values)
        uow.commit()


def finishes_onboarding(db, account: Account) -> None:
    finish_onboarding(db, account)


def logs_in(db, settings, email: str) -> None:
    with UnitOfWork(db) as uow:
        login.login(uow, settings, email=email, password=PASSWORD)
        uow.commit()


def invites(db, practice: Practice, email: str) -> None:
    with UnitOfWork(db, tenant=TenantContext.of(practice.tenant.id)) as uow:
        therapist = uow.session.get(Account, practice.therapist.id)
        invitations.invite_client(uow, therapist, email)
        uow.commit()


@dataclass(frozen=True)
class Key:
    metric: str
    scope: str
    grain: str
    bucket: datetime
    dimension: str


def all_points(db) -> dict[Key, float]:
    with system_session(db) as session:
        rows = session.execute(sa.select(MetricPoint)).scalars().all()
        return {Key(p.metric, p.scope, p.grain, p.bucket, p.dimension): p.value for p in rows}


def scope_of(db, tenant_id) -> str:
    """How this database spells a practice's scope (PostgreSQL and SQLite differ)."""
    from core.metrics.sql import scope_of as expression

    with db.engine.connect() as connection:
        return connection.execute(sa.select(expression(sa.literal(tenant_id, sa.Uuid())))
                                  ).scalar_one()
