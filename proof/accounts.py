"""The people the probes act as, made once per run in the proof's database by the platform's own
services (tests.support.factories, as bench does), and one platform admin made with the
operator's command (`flask users create-admin`)."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench import accounts as bench_accounts
from bench.inprocess import EnvKey, database
from bench.servers import BIN, ROOT
from proof.client import Visitor
from proof.platform import Platform
from proof.services import ServiceError

if TYPE_CHECKING:
    from core.db import Database

PASSWORD = "correct horse battery staple"  # tests.support.flows.PASSWORD
ADMIN_EMAIL = "admin@proof-platform.example"
# Clients on their onboarding's PERSONAL_INFO stage: the auto-save load, then the API fuzz.
ONBOARDING_FOR_LOAD = {True: 4, False: 50}


@dataclass(frozen=True)
class Member:
    email: str
    account_id: uuid.UUID
    identity_id: uuid.UUID
    name: str


@dataclass(frozen=True)
class Practice:
    name: str
    slug: str
    tenant_id: uuid.UUID
    therapist: Member
    client: Member
    invitation_id: uuid.UUID
    invitation_email: str
    session_hash: str  # one of the therapist's live sessions (sessions are the identity's)

    @property
    def markers(self) -> tuple[str, ...]:
        """Text that only this practice's own people may see."""
        return (self.therapist.name, self.therapist.email, self.client.name, self.client.email,
                self.invitation_email)


@dataclass(frozen=True)
class People:
    env: EnvKey  # the platform's environment, straight to PostgreSQL
    amber: Practice  # the probes' own practice
    bluebell: Practice  # the other practice, whose ids they try
    forms: Practice  # for the form fuzz, which may change its people's state
    load: Practice  # for the dashboards under load
    admin_email: str
    onboarding: tuple[str, ...]  # e-mails of clients mid-onboarding

    def onboarding_for_load(self, count: int) -> tuple[str, ...]:
        return self.onboarding[:count]

    @property
    def onboarding_for_fuzz(self) -> str:
        return self.onboarding[-1]


def seed(platform: Platform, *, quick: bool) -> People:
    env: EnvKey = frozenset(platform.direct_env.items())
    _create_admin(platform)
    # Production asks every admin for a second factor before anything else.
    Visitor(platform.url).enrol_authenticator_app(ADMIN_EMAIL, PASSWORD)
    onboarding = bench_accounts.onboarding_clients(env, ONBOARDING_FOR_LOAD[quick] + 1)
    return People(env, _practice(env, "Amber Proof Practice", "amber-proof"),
                  _practice(env, "Bluebell Proof Practice", "bluebell-proof"),
                  _practice(env, "Proof Forms Practice", "forms-proof"),
                  _practice(env, "Proof Load Practice", "load-proof"), ADMIN_EMAIL,
                  tuple(person.email for person in onboarding))


def _practice(env: EnvKey, name: str, slug_hint: str) -> Practice:
    from tests.support.factories import practice

    with database(env) as db:
        made = practice(db, name, slug_hint=slug_hint)
        _raise_budget(db, made.tenant.id)
    therapist, client = made.therapist, made.client
    return Practice(
        name, made.tenant.slug, made.tenant.id,
        Member(made.therapist_email, therapist.id, therapist.identity_id, therapist.display_name),
        Member(made.client_email, client.id, client.identity_id, client.display_name),
        made.invitation.id, made.invitation.email, made.session_hash)


def _raise_budget(db: Database, tenant_id: uuid.UUID) -> None:
    """The practice's own request budget raised, as the servers' other limits are (the probes
    send far more than a plan allows a practice; a 429 would only stop them)."""
    from core.scoping import system_session
    from core.tenancy.models import Tenant

    with system_session(db) as session:
        tenant = session.get(Tenant, tenant_id)
        assert tenant is not None
        tenant.requests_per_minute = bench_accounts.BENCH_REQUESTS_PER_MINUTE
        session.commit()


def _create_admin(platform: Platform) -> None:
    done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "users", "create-admin",
                           ADMIN_EMAIL], cwd=ROOT, env=platform.direct_env,
                          input=f"{PASSWORD}\n{PASSWORD}\n", capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        raise ServiceError(f"flask users create-admin failed ({done.returncode}):\n"
                           f"{done.stderr[-2000:]}{done.stdout[-2000:]}")
