"""Logging in, switching role, logging out; counting failures and locking out guessers.

A wrong e-mail, a wrong password and a locked login get one and the same answer, in the same
time. Failures are counted (and a lockout kept) even though the request that caused them is
refused: `UnitOfWork.commit_before_refusing`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core import clock
from core.config import Settings
from core.errors import Forbidden, NotFound, Unauthenticated
from core.events.types import EventType
from core.identity import sessions
from core.identity.directory import account_for, identity_by_email, landing_account
from core.identity.mfa_policy import Gate, gate_for, has_second_factor
from core.identity.models import Account, Identity, Role
from core.identity.passwords import hash_password, needs_rehash, verify_dummy, verify_password
from core.mail.addresses import InvalidAddress, normalise_address
from core.scoping import within_tenant
from core.uow import UnitOfWork

# A lockout that ended longer ago than this no longer makes the next one longer.
LOCKOUT_MEMORY = timedelta(hours=24)


class LoginFailed(Unauthenticated):
    """Wrong e-mail, wrong password or locked: deliberately one message for all three."""

    def __init__(self) -> None:
        super().__init__("That e-mail and password do not match an account, or the account is "
                         "locked for a while after too many attempts.")


class NotVerified(Forbidden):
    def __init__(self) -> None:
        super().__init__("Please confirm your e-mail address first. We have sent you a new link.")


@dataclass(frozen=True)
class LoginResult:
    identity: Identity
    account: Account
    raw_session_id: str
    # What the new session must do first (core.identity.mfa_policy.Gate), if anything.
    gate: str | None = None


def login(uow: UnitOfWork, settings: Settings, *, email: str, password: str) -> LoginResult:
    """Check the credentials and start a session; a refusal is recorded and kept. A person
    with a second factor (or under a policy that needs one) gets a gated session: it can do
    nothing but prove (or enrol) the factor (core.identity.mfa)."""
    try:
        identity, account = _authenticate(uow, settings, email, password)
    except LoginFailed as failed:
        uow.commit_before_refusing()  # the failure count, a lockout, the LOGIN_FAILED entry
        raise failed from None
    except NotVerified:
        uow.commit_before_refusing()  # the request for a new confirmation link
        raise
    return _start_session(uow, identity, account, via="password",
                          production=settings.is_production)


def log_in_verified(uow: UnitOfWork, identity: Identity, *,
                    settings: Settings | None = None) -> LoginResult:
    """After a verification, invitation or reset link: the link proved the address (not a
    second factor: a person who has one still proves it)."""
    account = landing_account(uow.session, identity)
    if account is None:
        raise NotFound("No account.")
    return _start_session(uow, identity, account, via="link",
                          production=settings is not None and settings.is_production)


def _start_session(uow: UnitOfWork, identity: Identity, account: Account, *,
                   via: str, production: bool) -> LoginResult:
    identity.last_login_at = clock.now()
    gate = gate_for(uow.session, identity.id, production=production)
    payload: dict[str, str] = {"role": account.role}
    if via != "password":
        payload["via"] = via
    if gate is not None:
        payload["second_factor"] = "to enrol" if gate == Gate.ENROL else "to prove"
    with within_tenant(uow.session, account.tenant_id):  # the account's own row is touched
        record_sign_in(uow, EventType.USER_LOGIN, identity, account, payload)
        raw = sessions.start(uow.session, identity, account, ip=uow.origin.ip,
                             user_agent=uow.origin.user_agent, factors=via, gate=gate)
    return LoginResult(identity=identity, account=account, raw_session_id=raw, gate=gate)


def _authenticate(uow: UnitOfWork, settings: Settings, email: str,
                  password: str) -> tuple[Identity, Account]:
    session = uow.session
    try:
        address = normalise_address(email)
    except InvalidAddress:
        address = None
    identity = identity_by_email(session, address) if address else None
    if identity is None or _locked(identity):
        verify_dummy(password or "")  # the same time as a real check
        _record_failure(uow, email, identity)
        raise LoginFailed()
    if not verify_password(identity.password_hash, password or ""):
        _count_failure(uow, settings, identity)
        _record_failure(uow, email, identity)
        raise LoginFailed()
    if identity.email_verified_at is None:
        uow.record(EventType.EMAIL_VERIFICATION_REQUESTED, subject=f"identity:{identity.id}")
        raise NotVerified()
    if identity.password_hash and needs_rehash(identity.password_hash):
        identity.password_hash = hash_password(password)
    if not has_second_factor(session, identity.id):
        # With a second factor, the count goes on until that is proven too (core.identity.mfa):
        # a known password must not reset the budget for guessing codes.
        clear_failures(identity)
    account = landing_account(session, identity)
    if account is None:
        _record_failure(uow, email, identity)
        raise LoginFailed()
    return identity, account


def _locked(identity: Identity) -> bool:
    return identity.locked_until is not None and identity.locked_until > clock.now()


def _record_failure(uow: UnitOfWork, email: str, identity: Identity | None) -> None:
    # The domain is enough to spot a campaign against one organisation; the full address is
    # not kept.
    domain = (email or "").rsplit("@", 1)[-1][:100].lower()
    uow.record(EventType.LOGIN_FAILED,
               subject=f"identity:{identity.id}" if identity else None,
               payload={"email_domain": domain})


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


# A wrong second-factor code counts towards the same lockout as a wrong password
# (core.identity.mfa): one budget of guesses per person, whatever is guessed.
count_failure = _count_failure
is_locked = _locked


def clear_failures(identity: Identity) -> None:
    """The owner proved themselves (or an admin vouched): lockouts start again from the first
    length, so no one who merely knows the address can push them towards day-long locks."""
    identity.failed_logins = 0
    identity.first_failed_at = None
    identity.locked_until = None
    identity.lockouts = 0


def unlock(uow: UnitOfWork, admin: Account, identity_id: uuid.UUID) -> Identity:
    if admin.role != Role.ADMIN:
        raise Forbidden("Only platform admins can unlock accounts.")
    identity = uow.session.get(Identity, identity_id)
    if identity is None:
        raise NotFound("No such identity.")
    clear_failures(identity)
    uow.record(EventType.ACCOUNT_UNLOCKED, actor_account_id=admin.id,
               subject=f"identity:{identity.id}")
    return identity


def switch_role(uow: UnitOfWork, view: sessions.SessionView, role: str) -> LoginResult:
    """Move to another of the identity's accounts, with a fresh session id (no fixation)."""
    session = uow.session
    identity = session.get(Identity, view.identity_uuid)
    target = account_for(session, view.identity_uuid, role) if role in set(Role) else None
    if identity is None or target is None:
        raise NotFound("You have no account with that role.")
    sessions.end(session, view.id_hash, "rotated")
    proven = datetime.fromisoformat(view.second_factor_at) if view.second_factor_at else None
    with within_tenant(session, target.tenant_id):  # the new session was made as the old one
        record_sign_in(uow, EventType.ROLE_SWITCHED, identity, target,
                       {"from": view.role, "to": target.role})
        raw = sessions.start(session, identity, target, ip=uow.origin.ip,
                             user_agent=uow.origin.user_agent, factors=view.factors,
                             second_factor_at=proven, gate=view.gate)
    return LoginResult(identity=identity, account=target, raw_session_id=raw)


def record_sign_in(uow: UnitOfWork, event_type: EventType, identity: Identity, account: Account,
                   payload: dict[str, str]) -> None:
    """Record a sign-in into `account` (USER_LOGIN, or ROLE_SWITCHED into it) and stamp its time
    on the account, where the active-people figures count it (core.metrics.activity). Called
    before the session starts, so that one UPDATE of the account carries both."""
    event = uow.record(event_type, tenant_id=account.tenant_id, actor_account_id=account.id,
                       subject=f"identity:{identity.id}", payload=payload)
    account.last_signed_in_at = event.occurred_at


def logout(uow: UnitOfWork, view: sessions.SessionView) -> None:
    sessions.end(uow.session, view.id_hash, "logout")
    uow.record(EventType.LOGOUT, tenant_id=view.tenant_uuid, actor_account_id=view.account_uuid,
               subject=f"identity:{view.identity_id}")


def session_for_new_account(uow: UnitOfWork, view: sessions.SessionView,
                            role: str) -> LoginResult:
    """After adding an account to a logged-in identity, move into it (the identity's cached
    roles go once this commits: Account.cached_under)."""
    uow.session.flush()
    return switch_role(uow, view, role)


def identity_of(session: Session, identity_id: uuid.UUID) -> Identity:
    identity = session.get(Identity, identity_id)
    if identity is None:
        raise NotFound("No such identity.")
    return identity
