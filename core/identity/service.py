"""Identity: sign-up, role accounts, invitations, login, sessions, passwords, verification.

Every function takes the unit of work, changes state, records events and leaves the commit to
the caller. Answers never reveal whether an e-mail address has an identity: sign-up, join and
reset answer "check your e-mail" either way, and the e-mail tells the owner what to do.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.cache import Cache
from core.config import Settings
from core.errors import DomainError, Forbidden, NotFound, ValidationFailed
from core.events.types import EventType
from core.identity import sessions
from core.identity.models import Account, AuthSession, Identity, Invitation, Role, TokenPurpose
from core.identity.passwords import (
    WeakPassword,
    check_strength,
    hash_password,
    needs_rehash,
    verify_dummy,
    verify_password,
)
from core.identity.tokens import digest, redeem
from core.mail.addresses import InvalidAddress, normalise_address
from core.onboarding import service as onboarding
from core.tenancy.context import TenantContext, crossing_tenants, set_context
from core.tenancy.models import Tenant, TenantStatus
from core.tenancy.service import by_slug, clean_text, create_tenant
from core.uow import UnitOfWork

INVITATION_LIFETIME = timedelta(days=7)
# A lockout that ended longer ago than this no longer makes the next one longer.
LOCKOUT_MEMORY = timedelta(hours=24)


class SignupOutcome(StrEnum):
    CREATED = "created"
    ALREADY_REGISTERED = "already-registered"


class LoginFailed(DomainError):
    """Wrong e-mail, wrong password or locked: deliberately one message for all three.

    `identity_id` (when the address is known) is for the audit entry, never for the answer."""

    def __init__(self, identity_id: uuid.UUID | None = None) -> None:
        super().__init__("That e-mail and password do not match an account, or the account is "
                         "locked for a while after too many attempts.")
        self.identity_id = identity_id


class NotVerified(DomainError):
    def __init__(self) -> None:
        super().__init__("Please confirm your e-mail address first. We have sent you a new link.")


@dataclass(frozen=True)
class LoginResult:
    identity: Identity
    account: Account
    raw_session_id: str


# -- helpers -----------------------------------------------------------------------------------

def _email(raw: str, field: str = "email") -> str:
    try:
        return normalise_address(raw)
    except InvalidAddress as error:
        raise ValidationFailed({field: str(error)}) from None


def _password(raw: str, email: str, field: str = "password") -> str:
    try:
        check_strength(raw or "", email=email)
    except WeakPassword as error:
        raise ValidationFailed({field: str(error)}) from None
    return raw


def identity_by_email(session: Session, email: str) -> Identity | None:
    return session.execute(sa.select(Identity).where(Identity.email == email)).scalar_one_or_none()


def account_for(session: Session, identity_id: uuid.UUID, role: Role | str) -> Account | None:
    """The one way to find an account: by (identity, role)."""
    with crossing_tenants(session):
        return session.execute(
            sa.select(Account).where(Account.identity_id == identity_id, Account.role == role)
        ).scalar_one_or_none()


def _validated(checks: dict[str, Callable[[], str]]) -> dict[str, str]:
    """Run every check; report all the fields that fail, not just the first."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for field, check in checks.items():
        try:
            values[field] = check()
        except ValidationFailed as failed:
            errors.update(failed.errors)
    if errors:
        raise ValidationFailed(errors)
    return values


def _new_identity(session: Session, email: str, password_hash: str | None, *,
                  verified: bool = False) -> Identity:
    now = clock.now()
    identity = Identity(id=uuid.uuid4(), email=email, password_hash=password_hash,
                        email_verified_at=now if verified else None, failed_logins=0, lockouts=0,
                        created_at=now, password_changed_at=now if password_hash else None)
    session.add(identity)
    session.flush()
    return identity


def _new_account(uow: UnitOfWork, identity: Identity, role: Role, tenant_id: uuid.UUID | None,
                 display_name: str, *, first: bool) -> Account:
    session = uow.session
    # The seed's rule: the first account's id is the identity's id; later ones get their own.
    account_id = identity.id if first else uuid.uuid4()
    set_context(session, TenantContext.of(tenant_id) if tenant_id else TenantContext.system())
    account = Account(id=account_id, identity_id=identity.id, role=role, tenant_id=tenant_id,
                      display_name=display_name, created_at=clock.now())
    session.add(account)
    onboarding.begin(uow, account)
    return account


def _register_new(uow: UnitOfWork, *, email: str, password_hash: str, display_name: str,
                  role: Role, tenant: Tenant, via: str, verified: bool = False) -> Account:
    identity = _new_identity(uow.session, email, password_hash, verified=verified)
    account = _new_account(uow, identity, role, tenant.id, display_name, first=True)
    uow.record(EventType.USER_CREATED, tenant_id=tenant.id, actor_account_id=account.id,
               subject=f"identity:{identity.id}",
               payload={"role": str(role), "tenant": tenant.slug, "verified": verified,
                        "via": via})
    return account


# -- sign-up -----------------------------------------------------------------------------------

def signup_therapist(uow: UnitOfWork, *, practice_name: str, display_name: str, email: str,
                     password: str) -> SignupOutcome:
    """A new therapist and their practice (provisioning until onboarding completes)."""
    values = _validated({
        "practice_name": lambda: clean_text(practice_name, "practice_name",
                                            "the practice's name"),
        "display_name": lambda: clean_text(display_name, "display_name", "your name"),
        "email": lambda: _email(email),
        "password": lambda: _password(password, email),
    })
    password_hash = hash_password(password)
    existing = identity_by_email(uow.session, values["email"])
    with _as_if_new(uow, existing):
        tenant = create_tenant(uow, values["practice_name"])
        _register_new(uow, email=_address_to_register(values["email"], existing),
                      password_hash=password_hash, display_name=values["display_name"],
                      role=Role.THERAPIST, tenant=tenant, via="signup")
    if existing is not None:
        _tell_owner(uow, existing, Role.THERAPIST)
        return SignupOutcome.ALREADY_REGISTERED
    return SignupOutcome.CREATED


def signup_client(uow: UnitOfWork, *, tenant_slug: str, display_name: str, email: str,
                  password: str) -> SignupOutcome:
    """An anonymous visitor joins a practice through its public join link."""
    tenant = practice_to_join(uow.session, tenant_slug)
    values = _validated({
        "display_name": lambda: clean_text(display_name, "display_name", "your name"),
        "email": lambda: _email(email),
        "password": lambda: _password(password, email),
    })
    password_hash = hash_password(password)
    existing = identity_by_email(uow.session, values["email"])
    with _as_if_new(uow, existing):
        _register_new(uow, email=_address_to_register(values["email"], existing),
                      password_hash=password_hash, display_name=values["display_name"],
                      role=Role.CLIENT, tenant=tenant, via="join")
    if existing is not None:
        _tell_owner(uow, existing, Role.CLIENT, tenant=tenant)
        return SignupOutcome.ALREADY_REGISTERED
    return SignupOutcome.CREATED


def _as_if_new(uow: UnitOfWork, existing: Identity | None) -> AbstractContextManager[None]:
    """A known address gets the same work as a new one (hashing, then every insert), undone
    afterwards: the answer, and the time it takes, must not tell whether the address is known."""
    return uow.rehearsal() if existing is not None else nullcontext()


def _address_to_register(address: str, existing: Identity | None) -> str:
    # The rehearsal cannot insert the taken address itself (it is unique); a stand-in that can
    # never be delivered to takes its place.
    return address if existing is None else f"rehearsal-{uuid.uuid4().hex}@invalid"


def _tell_owner(uow: UnitOfWork, identity: Identity, role: Role, *,
                tenant: Tenant | None = None) -> None:
    uow.record(EventType.SIGNUP_EMAIL_EXISTS, tenant_id=tenant.id if tenant else None,
               subject=f"identity:{identity.id}",
               payload={"role": str(role), "tenant": tenant.slug if tenant else None})


def practice_to_join(session: Session, slug: str) -> Tenant:
    tenant = by_slug(session, slug)
    if tenant is None or tenant.status == TenantStatus.SUSPENDED:
        raise NotFound("There is no practice at this address.")
    if tenant.status != TenantStatus.ACTIVE:
        raise NotFound(f"{tenant.name} is not accepting clients yet. Please try again later.")
    return tenant


# -- more role accounts ----------------------------------------------------------------------

def add_client_account(uow: UnitOfWork, identity_id: uuid.UUID, tenant: Tenant, *,
                       display_name: str, via: str = "join") -> Account:
    """A logged-in person joins a practice as a client (their identity gains a client role)."""
    identity = uow.session.get(Identity, identity_id)
    if identity is None:
        raise NotFound("No such identity.")
    if account_for(uow.session, identity_id, Role.CLIENT) is not None:
        raise Forbidden("You already have a client account; one person is a client of one "
                        "practice here.")
    name = clean_text(display_name, "display_name", "your name")
    account = _new_account(uow, identity, Role.CLIENT, tenant.id, name, first=False)
    uow.record(EventType.ACCOUNT_ADDED, tenant_id=tenant.id, actor_account_id=account.id,
               subject=f"identity:{identity.id}",
               payload={"role": "client", "tenant": tenant.slug, "via": via})
    return account


def add_therapist_account(uow: UnitOfWork, identity_id: uuid.UUID, *, practice_name: str,
                          display_name: str) -> Account:
    identity = uow.session.get(Identity, identity_id)
    if identity is None:
        raise NotFound("No such identity.")
    if account_for(uow.session, identity_id, Role.THERAPIST) is not None:
        raise Forbidden("You already run a practice here.")
    name = clean_text(display_name, "display_name", "your name")
    tenant = create_tenant(uow, practice_name)
    account = _new_account(uow, identity, Role.THERAPIST, tenant.id, name, first=False)
    uow.record(EventType.ACCOUNT_ADDED, tenant_id=tenant.id, actor_account_id=account.id,
               subject=f"identity:{identity.id}",
               payload={"role": "therapist", "tenant": tenant.slug})
    return account


def create_admin(uow: UnitOfWork, email: str, password: str | None) -> Account:
    """`flask users create-admin`: an admin account, on a new or an existing identity."""
    address = _email(email)
    if password is not None:
        _password(password, address)
    set_context(uow.session, TenantContext.system())
    identity = identity_by_email(uow.session, address)
    first = identity is None
    if identity is None:
        identity = _new_identity(uow.session, address,
                                 hash_password(password) if password else None, verified=True)
    elif account_for(uow.session, identity.id, Role.ADMIN) is not None:
        raise Forbidden(f"{address} is already an admin.")
    account = _new_account(uow, identity, Role.ADMIN, None, address.split("@")[0], first=first)
    uow.record(EventType.ADMIN_CREATED, actor_account_id=account.id,
               subject=f"identity:{identity.id}",
               payload={"send_link": identity.password_hash is None})
    return account


# -- invitations -------------------------------------------------------------------------------

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
    address = _email(email)
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
    set_context(session, TenantContext.of(tenant.id))
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
        values = _validated({
            "display_name": lambda: clean_text(display_name, "display_name", "your name"),
            "password": lambda: _password(password or "", invitation.email),
        })
        # Following the e-mailed link proves the address: no separate verification needed.
        account = _register_new(uow, email=invitation.email,
                                password_hash=hash_password(values["password"]),
                                display_name=values["display_name"], role=Role.CLIENT,
                                tenant=tenant, via="invitation", verified=True)
    set_context(session, TenantContext.of(tenant.id))
    invitation.accepted_at = clock.now()
    invitation.accepted_account_id = account.id
    invitation.token_hash = None
    uow.record(EventType.INVITATION_ACCEPTED, tenant_id=tenant.id, actor_account_id=account.id,
               subject=f"invitation:{invitation.id}", payload={"tenant": tenant.slug})
    return account


def revoke_invitation(uow: UnitOfWork, therapist: Account, invitation_id: uuid.UUID) -> None:
    # Tenant-scoped: another practice's invitation is simply not found.
    invitation = uow.session.get(Invitation, invitation_id)
    if invitation is None or invitation.tenant_id != therapist.tenant_id:
        raise NotFound("No such invitation.")
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = clock.now()
        invitation.token_hash = None


# -- login and sessions ------------------------------------------------------------------------

def authenticate(uow: UnitOfWork, settings: Settings, *, email: str,
                 password: str) -> tuple[Identity, Account]:
    session = uow.session
    try:
        address = normalise_address(email)
    except InvalidAddress:
        verify_dummy(password or "")
        raise LoginFailed() from None
    identity = identity_by_email(session, address)
    now = clock.now()
    if identity is None:
        verify_dummy(password or "")
        raise LoginFailed()
    if identity.locked_until is not None and identity.locked_until > now:
        verify_dummy(password or "")
        raise LoginFailed(identity.id)
    if not verify_password(identity.password_hash, password or ""):
        _count_failure(uow, settings, identity)
        raise LoginFailed(identity.id)
    if identity.email_verified_at is None:
        uow.record(EventType.EMAIL_VERIFICATION_REQUESTED, subject=f"identity:{identity.id}")
        raise NotVerified()
    if identity.password_hash and needs_rehash(identity.password_hash):
        identity.password_hash = hash_password(password)
    _clear_failures(identity)
    account = _landing_account(session, identity)
    if account is None:
        raise LoginFailed(identity.id)
    return identity, account


def _count_failure(uow: UnitOfWork, settings: Settings, identity: Identity) -> None:
    now = clock.now()
    window = timedelta(minutes=settings.login_failure_window_minutes)
    if identity.first_failed_at is None or now - identity.first_failed_at > window:
        identity.first_failed_at = now
        identity.failed_logins = 0
    identity.failed_logins += 1
    if identity.failed_logins >= settings.login_max_failures:
        if identity.locked_until is not None and now - identity.locked_until > LOCKOUT_MEMORY:
            identity.lockouts = 0
        minutes = min(settings.lockout_minutes * 2 ** identity.lockouts, 24 * 60)
        identity.locked_until = now + timedelta(minutes=minutes)
        identity.lockouts += 1
        identity.failed_logins = 0
        identity.first_failed_at = None
        uow.record(EventType.ACCOUNT_LOCKED, subject=f"identity:{identity.id}",
                   payload={"minutes": minutes, "lockouts": identity.lockouts})


def _clear_failures(identity: Identity) -> None:
    """The owner proved themselves (or an admin vouched): lockouts start again from the first
    length, so no one who merely knows the address can push them towards day-long locks."""
    identity.failed_logins = 0
    identity.first_failed_at = None
    identity.locked_until = None
    identity.lockouts = 0


def _landing_account(session: Session, identity: Identity) -> Account | None:
    """The role used last, else the first account."""
    accounts = sessions.accounts_of(session, identity.id)
    for account in accounts:
        if account.id == identity.last_account_id:
            return account
    return accounts[0] if accounts else None


def enter_account(session: Session, account: Account) -> None:
    """From here on the session works inside this account's tenant (admins: all tenants)."""
    set_context(session, TenantContext.of(account.tenant_id) if account.tenant_id
                else TenantContext.system())


def login(uow: UnitOfWork, settings: Settings, *, email: str, password: str) -> LoginResult:
    identity, account = authenticate(uow, settings, email=email, password=password)
    enter_account(uow.session, account)
    identity.last_login_at = clock.now()
    raw = sessions.start(uow.session, identity, account, ip=uow.origin.ip,
                         user_agent=uow.origin.user_agent)
    uow.record(EventType.USER_LOGIN, tenant_id=account.tenant_id, actor_account_id=account.id,
               subject=f"identity:{identity.id}", payload={"role": account.role})
    return LoginResult(identity=identity, account=account, raw_session_id=raw)


def log_in_verified(uow: UnitOfWork, identity: Identity) -> LoginResult:
    """After a verification or invitation link: the link proved the address."""
    account = _landing_account(uow.session, identity)
    if account is None:
        raise NotFound("No account.")
    enter_account(uow.session, account)
    identity.last_login_at = clock.now()
    raw = sessions.start(uow.session, identity, account, ip=uow.origin.ip,
                         user_agent=uow.origin.user_agent)
    uow.record(EventType.USER_LOGIN, tenant_id=account.tenant_id, actor_account_id=account.id,
               subject=f"identity:{identity.id}", payload={"role": account.role, "via": "link"})
    return LoginResult(identity=identity, account=account, raw_session_id=raw)


def switch_role(uow: UnitOfWork, cache: Cache, view: sessions.SessionView,
                role: str) -> LoginResult:
    """Move to another of the identity's accounts, with a fresh session id (no fixation)."""
    session = uow.session
    identity = session.get(Identity, view.identity_uuid)
    target = account_for(session, view.identity_uuid, role) if role in set(Role) else None
    if identity is None or target is None:
        raise NotFound("You have no account with that role.")
    sessions.end(session, cache, view.id_hash, "rotated")
    enter_account(session, target)
    raw = sessions.start(session, identity, target, ip=uow.origin.ip,
                         user_agent=uow.origin.user_agent)
    uow.record(EventType.ROLE_SWITCHED, tenant_id=target.tenant_id, actor_account_id=target.id,
               subject=f"identity:{identity.id}",
               payload={"from": view.role, "to": target.role})
    return LoginResult(identity=identity, account=target, raw_session_id=raw)


def logout(uow: UnitOfWork, cache: Cache, view: sessions.SessionView) -> None:
    sessions.end(uow.session, cache, view.id_hash, "logout")
    uow.record(EventType.LOGOUT, tenant_id=view.tenant_uuid, actor_account_id=view.account_uuid,
               subject=f"identity:{view.identity_id}")


def revoke_session(uow: UnitOfWork, cache: Cache, view: sessions.SessionView,
                   target_hash: str) -> None:
    record = uow.session.get(AuthSession, target_hash) if sessions.is_id_hash(target_hash) else None
    if record is None or str(record.identity_id) != view.identity_id:
        raise NotFound("No such session.")
    if record.revoked_at is not None:
        return  # ended meanwhile (another tab, a timeout): nothing left to do
    sessions.end(uow.session, cache, target_hash, "revoked")
    uow.record(EventType.SESSION_REVOKED, tenant_id=view.tenant_uuid,
               actor_account_id=view.account_uuid, subject=f"identity:{view.identity_id}",
               payload={"which": "one"})


def revoke_other_sessions(uow: UnitOfWork, cache: Cache, view: sessions.SessionView) -> int:
    ended = sessions.end_all(uow.session, cache, view.identity_uuid, "revoked", keep=view.id_hash)
    uow.record(EventType.SESSION_REVOKED, tenant_id=view.tenant_uuid,
               actor_account_id=view.account_uuid, subject=f"identity:{view.identity_id}",
               payload={"which": "others", "count": ended})
    return ended


# -- passwords and verification ---------------------------------------------------------------

def change_password(uow: UnitOfWork, cache: Cache, view: sessions.SessionView, *, current: str,
                    new: str) -> None:
    identity = uow.session.get(Identity, view.identity_uuid)
    assert identity is not None
    if not verify_password(identity.password_hash, current or ""):
        raise ValidationFailed({"current_password": "That is not your current password."})
    _password(new, identity.email, field="new_password")
    if verify_password(identity.password_hash, new):
        raise ValidationFailed({"new_password": "Choose a password you have not been using."})
    _set_password(uow, cache, identity, new, keep=view.id_hash, how="changed")


def _set_password(uow: UnitOfWork, cache: Cache, identity: Identity, password: str, *,
                  keep: str | None, how: str) -> None:
    identity.password_hash = hash_password(password)
    identity.password_changed_at = clock.now()
    _clear_failures(identity)
    sessions.end_all(uow.session, cache, identity.id, "password_changed", keep=keep)
    uow.record(EventType.PASSWORD_CHANGED, subject=f"identity:{identity.id}",
               payload={"how": how})


def request_password_reset(uow: UnitOfWork, email: str) -> None:
    """Same answer for known and unknown addresses; only a known one gets an e-mail."""
    try:
        address = normalise_address(email)
    except InvalidAddress as error:
        raise ValidationFailed({"email": str(error)}) from None
    identity = identity_by_email(uow.session, address)
    if identity is not None:
        uow.record(EventType.PASSWORD_RESET_REQUESTED, subject=f"identity:{identity.id}")


def reset_password(uow: UnitOfWork, cache: Cache, raw_token: str, new_password: str,
                   purpose: TokenPurpose = TokenPurpose.RESET_PASSWORD) -> Identity:
    token = redeem(uow.session, raw_token, purpose)
    if token is None:
        raise NotFound("This link is not valid any more. Ask for a new one.")
    identity = uow.session.get(Identity, token.identity_id)
    assert identity is not None
    _password(new_password, identity.email)
    if identity.email_verified_at is None:
        identity.email_verified_at = clock.now()  # the link proved the address
    _set_password(uow, cache, identity, new_password, keep=None, how=str(purpose))
    return identity


def verify_email(uow: UnitOfWork, raw_token: str) -> Identity:
    token = redeem(uow.session, raw_token, TokenPurpose.VERIFY_EMAIL)
    if token is None:
        raise NotFound("This confirmation link is not valid any more. Log in to get a new one.")
    identity = uow.session.get(Identity, token.identity_id)
    assert identity is not None
    if identity.email_verified_at is None:
        identity.email_verified_at = clock.now()
        uow.record(EventType.EMAIL_VERIFIED, subject=f"identity:{identity.id}")
    return identity


def unlock(uow: UnitOfWork, admin: Account, identity_id: uuid.UUID) -> Identity:
    if admin.role != Role.ADMIN:
        raise Forbidden("Only platform admins can unlock accounts.")
    identity = uow.session.get(Identity, identity_id)
    if identity is None:
        raise NotFound("No such identity.")
    _clear_failures(identity)
    uow.record(EventType.ACCOUNT_UNLOCKED, actor_account_id=admin.id,
               subject=f"identity:{identity.id}")
    return identity
