"""The people the logged-in entries log in as, made in the run's database by the platform's own
services (so every invariant, event and hash applies), once per run.

Therapists come from the test suite's factory, `tests.support.factories.practice`: a verified
therapist whose onboarding is complete, in an active practice with one client and one invitation.
Each entry gets its own practice, so one entry's rows (log-ins, clients) never show on another's
pages.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

from bench.inprocess import EnvKey, database


@dataclass(frozen=True)
class Person:
    email: str
    identity_id: uuid.UUID


@dataclass(frozen=True)
class Practice:
    therapist: Person
    tenant_id: uuid.UUID
    tenant_slug: str


def password() -> str:
    from tests.support.flows import PASSWORD

    return PASSWORD


# Each practice's own request budget, as a platform admin would set it: its plan's would refuse
# most of what the bench sends (the servers' other limits are raised in bench.backends).
BENCH_REQUESTS_PER_MINUTE = 100_000_000


@functools.cache
def practice(env: EnvKey, name: str, slug_hint: str) -> Practice:
    from core.scoping import system_session
    from core.tenancy.models import Tenant
    from tests.support.factories import practice as make_practice

    with database(env) as db:
        made = make_practice(db, name, slug_hint=slug_hint)
        with system_session(db) as session:
            tenant = session.get(Tenant, made.tenant.id)
            assert tenant is not None
            tenant.requests_per_minute = BENCH_REQUESTS_PER_MINUTE
            session.commit()
    return Practice(Person(made.therapist_email, made.therapist.identity_id), made.tenant.id,
                    made.tenant.slug)


@functools.cache
def onboarding_clients(env: EnvKey, count: int) -> tuple[Person, ...]:
    """`count` verified clients who joined a practice of their own and are on the PERSONAL_INFO
    stage of their onboarding (version 2)."""
    from core import clock
    from core.identity import signup
    from core.identity.directory import account_for, identity_by_email
    from core.identity.models import Role
    from core.onboarding import service as onboarding
    from core.onboarding.stages import Stage
    from core.scoping import TenantContext
    from core.uow import UnitOfWork

    home = practice(env, "Bench Autosave", "bench-autosave")
    people = []
    with database(env) as db:
        for number in range(count):
            email = f"autosave{number}@bench-autosave.example"
            with UnitOfWork(db) as uow:
                signup.signup_client(uow, tenant_slug=home.tenant_slug,
                                      display_name=f"Bench Client {number}", email=email,
                                      password=password())
                identity = identity_by_email(uow.session, email)
                assert identity is not None
                identity.email_verified_at = clock.now()  # as if they followed the e-mailed link
                uow.commit()
            with UnitOfWork(db, tenant=TenantContext.of(home.tenant_id)) as uow:
                account = account_for(uow.session, identity.id, Role.CLIENT)
                assert account is not None
                onboarding.move(uow, account.id, Stage.PERSONAL_INFO)
                uow.commit()
            people.append(Person(email, identity.id))
    return tuple(people)


def forget_logins(env: EnvKey, person: Person) -> None:
    """Delete the sessions of `person` and the USER_LOGIN events their log-ins recorded (nothing
    reads them: no worker runs during the HTTP entries), so rounds start from the same tables."""
    import sqlalchemy as sa

    from core.events.models import Event
    from core.events.types import EventType
    from core.identity.models import AuthSession
    from core.scoping import system_session

    with database(env) as db, system_session(db) as session:
        session.execute(sa.delete(AuthSession).where(AuthSession.identity_id == person.identity_id))
        session.execute(sa.delete(Event).where(Event.type == str(EventType.USER_LOGIN),
                                               Event.subject == f"identity:{person.identity_id}"))
        session.commit()
