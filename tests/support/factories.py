"""Test data made through the real services (so every invariant and event applies)."""

from __future__ import annotations

from dataclasses import dataclass

from core import clock
from core.identity import invitations, signup
from core.identity.directory import account_for, identity_by_email
from core.identity.models import Account, Identity, Invitation, Role
from core.identity.sessions import start
from core.scoping import TenantContext, set_context
from core.tenancy.models import Tenant, TenantStatus
from core.uow import UnitOfWork
from tests.support.flows import PASSWORD


@dataclass
class Practice:
    tenant: Tenant
    therapist: Account
    therapist_email: str
    client: Account
    client_email: str
    invitation: Invitation
    session_hash: str


def practice(db, name: str, *, slug_hint: str) -> Practice:
    """A verified therapist, one client and one pending invitation, all in a new practice."""
    therapist_email = f"therapist@{slug_hint}.example"
    client_email = f"client@{slug_hint}.example"
    with UnitOfWork(db) as uow:
        signup.signup_therapist(uow, practice_name=name, display_name=f"Therapist of {name}",
                                 email=therapist_email, password=PASSWORD)
        uow.commit()
        identity = identity_by_email(uow.session, therapist_email)
        identity.email_verified_at = clock.now()
        therapist = account_for(uow.session, identity.id, Role.THERAPIST)
        tenant = uow.session.get(Tenant, therapist.tenant_id)
        # A practice opens once its therapist finished onboarding (a worker's job; the factory
        # takes the shortcut).
        tenant.status = TenantStatus.ACTIVE
        set_context(uow.session, TenantContext.of(tenant.id))
        uow.commit()
        signup.signup_client(uow, tenant_slug=tenant.slug, display_name=f"Client of {name}",
                              email=client_email, password=PASSWORD)
        client_identity = identity_by_email(uow.session, client_email)
        client_identity.email_verified_at = clock.now()
        uow.commit()
        client = account_for(uow.session, client_identity.id, Role.CLIENT)
        set_context(uow.session, TenantContext.of(tenant.id))
        invitation = invitations.invite_client(uow, therapist, f"invitee@{slug_hint}.example")
        raw = start(uow.session, identity, therapist, ip="127.0.0.1", user_agent="factory")
        uow.commit()
    for account in (therapist, client):
        finish_onboarding(db, account)
    from core.identity.tokens import digest

    return Practice(tenant, therapist, therapist_email, client, client_email, invitation,
                    digest(raw))


def identity_of(db, email: str) -> Identity:
    with UnitOfWork(db) as uow:
        return identity_by_email(uow.session, email)


def finish_onboarding(db, account: Account) -> None:
    """Walk an account through every onboarding stage with valid answers, via the service."""
    from core.onboarding import service as onboarding
    from core.onboarding.stages import Stage, flow
    from tests.support.flows import PERSONAL_INFO, PROFESSIONAL_INFO

    answers = {Stage.PERSONAL_INFO: PERSONAL_INFO, Stage.PROFESSIONAL_INFO: PROFESSIONAL_INFO,
               Stage.TERMS: {"accept_terms": True, "accept_privacy": True}}
    with UnitOfWork(db, tenant=TenantContext.of(account.tenant_id)) as uow:
        for target in flow(account.role)[1:]:
            progress = onboarding.of_account(uow.session, account.id)
            current = Stage(progress.stage)
            onboarding.move(uow, account.id, target, values=answers.get(current))
        uow.commit()
