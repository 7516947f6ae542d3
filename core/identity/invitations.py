"""A therapist invites a client by e-mail; the link in it works once, for a week."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.errors import Forbidden, NotFound, ValidationFailed
from core.events.types import EventType
from core.identity.directory import account_for, identity_by_email
from core.identity.models import Account, Identity, Invitation, Role
from core.identity.passwords import hash_password
from core.identity.signup import add_client_account, register
from core.identity.tokens import digest
from core.identity.validation import all_fields, email_address, new_password
from core.scoping import crossing_tenants, within_tenant
from core.tenancy.guard import owned
from core.tenancy.models import Tenant, TenantStatus
from core.text import clean_name
from core.uow import UnitOfWork

INVITATION_LIFETIME = timedelta(days=7)


def invite_client(uow: UnitOfWork, inviter: Account, email: str) -> Invitation:
    if inviter.role != Role.THERAPIST or inviter.tenant_id is None:
        raise Forbidden("Only a practice's therapist can invite its clients.")
    inviter_identity = uow.session.get(Identity, inviter.identity_id)
    if inviter_identity is None or inviter_identity.email_verified_at is None:
        raise Forbidden("Confirm your own e-mail address before inviting clients.")
    tenant = uow.session.get(Tenant, inviter.tenant_id)
    if tenant is None or tenant.status != TenantStatus.ACTIVE:
        raise Forbidden("Your practice becomes active when you finish setting up; invite "
                        "clients then.")
    address = email_address(email)
    session = uow.session
    existing = identity_by_email(session, address)
    if existing is not None:
        client = account_for(session, existing.id, Role.CLIENT)
        if client is not None and client.tenant_id == inviter.tenant_id:
            raise ValidationFailed({"email": "That person is already a client of your "
                                             "practice."})
    now = clock.now()
    invitation = Invitation(id=uuid.uuid4(), tenant_id=inviter.tenant_id, email=address,
                            invited_by_account_id=inviter.id, created_at=now,
                            expires_at=now + INVITATION_LIFETIME)
    session.add(invitation)
    uow.record(EventType.INVITATION_SENT, tenant_id=inviter.tenant_id,
               actor_account_id=inviter.id, subject=f"invitation:{invitation.id}",
               payload={"invitation_id": str(invitation.id)})
    return invitation


def open_invitation(session: Session, raw_token: str) -> Invitation:
    """The invitation a link points to, if it can still be accepted."""
    if not raw_token or len(raw_token) > 200:
        raise NotFound("This invitation link is not valid.")
    with crossing_tenants(session):
        invitation = session.execute(
            sa.select(Invitation).where(Invitation.token_hash == digest(raw_token))
        ).scalar_one_or_none()
    if invitation is None or invitation.revoked_at is not None:
        raise NotFound("This invitation link is not valid.")
    if invitation.accepted_at is not None:
        raise NotFound("This invitation has already been used. Log in instead.")
    if invitation.expires_at <= clock.now():
        raise NotFound("This invitation has expired. Ask your therapist for a new one.")
    return invitation


def accept_invitation(uow: UnitOfWork, raw_token: str, *, display_name: str,
                      password: str | None = None,
                      identity_id: uuid.UUID | None = None) -> Account:
    """New person (sets a password) or logged-in owner of the invited address."""
    session = uow.session
    invitation = open_invitation(session, raw_token)
    tenant = session.get(Tenant, invitation.tenant_id)
    assert tenant is not None
    if identity_id is not None:
        identity = session.get(Identity, identity_id)
        if identity is None or identity.email != invitation.email:
            raise Forbidden(f"This invitation is for {invitation.email}. Log in with that "
                            "address to accept it.")
        account = add_client_account(uow, identity.id, tenant, display_name=display_name,
                                     via="invitation")
    else:
        if identity_by_email(session, invitation.email) is not None:
            raise Forbidden("You already have an account. Log in to accept the invitation.")
        values = all_fields({
            "display_name": lambda: clean_name(display_name, "display_name", "your name"),
            "password": lambda: new_password(password or "", invitation.email),
        })
        # Following the e-mailed link proves the address: no separate verification needed.
        account = register(uow, email=invitation.email,
                           password_hash=hash_password(values["password"]),
                           display_name=values["display_name"], role=Role.CLIENT, tenant=tenant,
                           via="invitation", verified=True)
    with within_tenant(session, tenant.id):
        invitation.accepted_at = clock.now()
        invitation.accepted_account_id = account.id
        invitation.token_hash = None
    uow.record(EventType.INVITATION_ACCEPTED, tenant_id=tenant.id, actor_account_id=account.id,
               subject=f"invitation:{invitation.id}", payload={"tenant": tenant.slug})
    return account


def revoke_invitation(uow: UnitOfWork, invitation_id: uuid.UUID) -> Invitation:
    """Revoke one of the practice's invitations (another practice's is simply not found)."""
    invitation = owned(uow.session, Invitation, invitation_id)
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = clock.now()
        invitation.token_hash = None
    return invitation
