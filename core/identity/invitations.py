"""A therapist invites a client by e-mail; the link in it works once, for a week.

An invitation is pending, accepted, expired or withdrawn (revoked). A practice has at most one
open invitation per address: inviting the address again resends that one, with a new link and
a new week. Resending waits a few minutes between two sends, so no inbox is flooded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.errors import Forbidden, NotFound, RateLimited, ValidationFailed
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
RESEND_COOLDOWN = timedelta(minutes=10)
# An invitee with an expired link may ask the practice for a new one this often.
RENEWAL_REQUEST_EVERY = timedelta(days=1)


class InvitationState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    REVOKED = "revoked"


def state_of(invitation: Invitation, now: datetime | None = None) -> InvitationState:
    if invitation.accepted_at is not None:
        return InvitationState.ACCEPTED
    if invitation.revoked_at is not None:
        return InvitationState.REVOKED
    if invitation.expires_at <= (now or clock.now()):
        return InvitationState.EXPIRED
    return InvitationState.PENDING


def resend_available_at(invitation: Invitation) -> datetime | None:
    """When the invitation may be sent again; None if it can be now (or never: accepted,
    withdrawn)."""
    if state_of(invitation) in (InvitationState.ACCEPTED, InvitationState.REVOKED):
        return None
    ready = (invitation.last_sent_at or invitation.created_at) + RESEND_COOLDOWN
    return ready if ready > clock.now() else None


class InvitationUnusable(NotFound):
    """The link points to an invitation that can no longer be accepted; `state` says why."""

    def __init__(self, state: InvitationState | None, message: str) -> None:
        super().__init__(message)
        self.state = state


MESSAGES = {
    None: "This invitation link is not valid. If the practice sent you a newer invitation, "
          "use the link in the latest e-mail.",
    InvitationState.ACCEPTED: "This invitation has already been used. Log in instead.",
    InvitationState.EXPIRED: "This invitation has expired. Ask the practice for a new one.",
    InvitationState.REVOKED: "The practice has withdrawn this invitation.",
}


# -- the practice's side -------------------------------------------------------------------------

def _require_inviter(uow: UnitOfWork, inviter: Account) -> Tenant:
    if inviter.role != Role.THERAPIST or inviter.tenant_id is None:
        raise Forbidden("Only a practice's therapist can invite its clients.")
    inviter_identity = uow.session.get(Identity, inviter.identity_id)
    if inviter_identity is None or inviter_identity.email_verified_at is None:
        raise Forbidden("Confirm your own e-mail address before inviting clients.")
    tenant = uow.session.get(Tenant, inviter.tenant_id)
    if tenant is None or tenant.status != TenantStatus.ACTIVE:
        raise Forbidden("Your practice becomes active when you finish setting up; invite "
                        "clients then.")
    return tenant


def invite_client(uow: UnitOfWork, inviter: Account, email: str) -> Invitation:
    """Invite an address; an address with an open invitation gets that one again."""
    _require_inviter(uow, inviter)
    address = email_address(email)
    session = uow.session
    existing = identity_by_email(session, address)
    if existing is not None:
        client = account_for(session, existing.id, Role.CLIENT)
        if client is not None and client.tenant_id == inviter.tenant_id:
            raise ValidationFailed({"email": "That person is already a client of your "
                                             "practice."})
    open_one = session.execute(
        sa.select(Invitation).where(Invitation.email == address,
                                    Invitation.accepted_at.is_(None),
                                    Invitation.revoked_at.is_(None))
    ).scalar_one_or_none()
    if open_one is not None:
        return _send_again(uow, inviter, open_one, field="email")
    now = clock.now()
    invitation = Invitation(id=uuid.uuid4(), tenant_id=inviter.tenant_id, email=address,
                            invited_by_account_id=inviter.id, created_at=now,
                            expires_at=now + INVITATION_LIFETIME, last_sent_at=now,
                            send_count=1)
    session.add(invitation)
    _record_sent(uow, inviter, invitation, resend=False)
    return invitation


def resend_invitation(uow: UnitOfWork, inviter: Account,
                      invitation_id: uuid.UUID) -> Invitation:
    _require_inviter(uow, inviter)
    invitation = owned(uow.session, Invitation, invitation_id)
    if state_of(invitation) in (InvitationState.ACCEPTED, InvitationState.REVOKED):
        raise ValidationFailed({"invitation": "That invitation is closed; invite the address "
                                              "again instead."})
    return _send_again(uow, inviter, invitation)


def _send_again(uow: UnitOfWork, inviter: Account, invitation: Invitation, *,
                field: str = "invitation") -> Invitation:
    ready = resend_available_at(invitation)
    if ready is not None:
        minutes = max(1, round((ready - clock.now()).total_seconds() / 60))
        message = (f"An invitation went to {invitation.email} a moment ago. You can send it "
                   f"again in {minutes} minute{'s' if minutes != 1 else ''}.")
        if field == "email":  # asked for by inviting the address again: said on that form
            raise ValidationFailed({field: message})
        raise RateLimited(message, int((ready - clock.now()).total_seconds()) + 1)
    now = clock.now()
    invitation.last_sent_at = now
    invitation.expires_at = now + INVITATION_LIFETIME
    invitation.send_count += 1
    invitation.renewal_requested_at = None
    _record_sent(uow, inviter, invitation, resend=True)
    return invitation


def _record_sent(uow: UnitOfWork, inviter: Account, invitation: Invitation, *,
                 resend: bool) -> None:
    uow.record(EventType.INVITATION_SENT, tenant_id=inviter.tenant_id,
               actor_account_id=inviter.id, subject=f"invitation:{invitation.id}",
               payload={"invitation_id": str(invitation.id), "resend": resend})


def revoke_invitation(uow: UnitOfWork, invitation_id: uuid.UUID) -> Invitation:
    """Withdraw one of the practice's invitations (another practice's is simply not found).
    Its link then says it was withdrawn."""
    invitation = owned(uow.session, Invitation, invitation_id)
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = clock.now()
        uow.record(EventType.INVITATION_REVOKED, tenant_id=invitation.tenant_id,
                   subject=f"invitation:{invitation.id}",
                   payload={"invitation_id": str(invitation.id)})
    return invitation


# -- the invitee's side --------------------------------------------------------------------------

@dataclass(frozen=True)
class InvitationLink:
    """What an invitation link leads to: the invitation (None: no such link) and its state."""

    invitation: Invitation | None
    state: InvitationState | None
    tenant: Tenant | None

    @property
    def message(self) -> str:
        return MESSAGES[self.state if self.state != InvitationState.PENDING else None]


def follow_link(session: Session, raw_token: str) -> InvitationLink:
    invitation = None
    if raw_token and len(raw_token) <= 200:
        with crossing_tenants(session):
            invitation = session.execute(
                sa.select(Invitation).where(Invitation.token_hash == digest(raw_token))
            ).scalar_one_or_none()
    if invitation is None:
        return InvitationLink(None, None, None)
    tenant = session.get(Tenant, invitation.tenant_id)
    return InvitationLink(invitation, state_of(invitation), tenant)


def open_invitation(session: Session, raw_token: str) -> Invitation:
    """The invitation a link points to, if it can still be accepted."""
    link = follow_link(session, raw_token)
    if link.invitation is None or link.state != InvitationState.PENDING:
        raise InvitationUnusable(link.state, link.message)
    return link.invitation


def request_renewal(uow: UnitOfWork, raw_token: str) -> InvitationLink:
    """The holder of an expired link asks the practice for a new invitation (the therapist who
    sent it is notified). Asking again within a day changes nothing."""
    link = follow_link(uow.session, raw_token)
    invitation = link.invitation
    if invitation is None or link.state != InvitationState.EXPIRED:
        raise InvitationUnusable(link.state, link.message)
    now = clock.now()
    asked = invitation.renewal_requested_at
    if asked is None or now - asked > RENEWAL_REQUEST_EVERY:
        with within_tenant(uow.session, invitation.tenant_id):
            invitation.renewal_requested_at = now
        uow.record(EventType.INVITATION_RENEWAL_REQUESTED, tenant_id=invitation.tenant_id,
                   actor_account_id=invitation.invited_by_account_id,
                   subject=f"invitation:{invitation.id}",
                   payload={"invitation_id": str(invitation.id)})
    return link


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
        # The link is kept (as its hash): followed again, it says it was used.
        invitation.accepted_at = clock.now()
        invitation.accepted_account_id = account.id
    uow.record(EventType.INVITATION_ACCEPTED, tenant_id=tenant.id, actor_account_id=account.id,
               subject=f"invitation:{invitation.id}", payload={"tenant": tenant.slug})
    return account
