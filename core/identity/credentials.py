"""Passwords changed, reset and first set, and e-mail addresses confirmed."""

from __future__ import annotations

from core import clock
from core.adapters.cache import Cache
from core.errors import NotFound, RateLimited, ValidationFailed
from core.events.types import EventType
from core.identity import sessions
from core.identity.directory import identity_by_email
from core.identity.login import clear_failures
from core.identity.models import Identity, TokenPurpose
from core.identity.passwords import hash_password, verify_password
from core.identity.tokens import redeem
from core.identity.validation import email_address, new_password
from core.uow import UnitOfWork

# A new confirmation link at most this often per identity (the e-mail allowance backs it up).
RESEND_VERIFICATION_EVERY_SECONDS = 60


def change_password(uow: UnitOfWork, view: sessions.SessionView, *, current: str,
                    new: str) -> None:
    identity = uow.session.get(Identity, view.identity_uuid)
    if identity is None:
        raise NotFound("No such identity.")
    if not verify_password(identity.password_hash, current or ""):
        raise ValidationFailed({"current_password": "That is not your current password."})
    new_password(new, identity.email, field="new_password")
    if verify_password(identity.password_hash, new):
        raise ValidationFailed({"new_password": "Choose a password you have not been using."})
    _set_password(uow, identity, new, keep=view.id_hash, how="changed")


def _set_password(uow: UnitOfWork, identity: Identity, password: str, *,
                  keep: str | None, how: str) -> None:
    identity.password_hash = hash_password(password)
    identity.password_changed_at = clock.now()
    clear_failures(identity)
    sessions.end_all(uow.session, identity.id, "password_changed", keep=keep)
    uow.record(EventType.PASSWORD_CHANGED, subject=f"identity:{identity.id}",
               payload={"how": how})


def request_password_reset(uow: UnitOfWork, email: str) -> None:
    """Same answer for known and unknown addresses; only a known one gets an e-mail."""
    address = email_address(email)
    identity = identity_by_email(uow.session, address)
    if identity is not None:
        uow.record(EventType.PASSWORD_RESET_REQUESTED, subject=f"identity:{identity.id}")


def reset_password(uow: UnitOfWork, raw_token: str, password: str,
                   purpose: TokenPurpose = TokenPurpose.RESET_PASSWORD) -> Identity:
    """A reset link (or an admin's set-password link) used: the new password, every session
    ended; the link also proves the address."""
    token = redeem(uow.session, raw_token, purpose)
    if token is None:
        raise NotFound("This link is not valid any more. Ask for a new one.")
    identity = uow.session.get(Identity, token.identity_id)
    if identity is None:
        raise NotFound("This link is not valid any more. Ask for a new one.")
    new_password(password, identity.email)
    if identity.email_verified_at is None:
        identity.email_verified_at = clock.now()
    _set_password(uow, identity, password, keep=None, how=str(purpose))
    return identity


def verify_email(uow: UnitOfWork, raw_token: str) -> Identity:
    token = redeem(uow.session, raw_token, TokenPurpose.VERIFY_EMAIL)
    if token is None:
        raise NotFound("This confirmation link is not valid any more. Log in to get a new one.")
    identity = uow.session.get(Identity, token.identity_id)
    if identity is None:
        raise NotFound("This confirmation link is not valid any more. Log in to get a new one.")
    if identity.email_verified_at is None:
        identity.email_verified_at = clock.now()
        uow.record(EventType.EMAIL_VERIFIED, subject=f"identity:{identity.id}")
    return identity


def resend_verification(uow: UnitOfWork, cache: Cache, view: sessions.SessionView) -> bool:
    """A new confirmation link for a logged-in person whose address is not confirmed yet.
    False when it is confirmed already (nothing to send)."""
    if view.email_verified:
        return False
    if cache.incr(f"verification-resend:{view.identity_id}",
                  RESEND_VERIFICATION_EVERY_SECONDS) not in (None, 1):
        raise RateLimited("We sent a link a moment ago. Check your inbox (and spam folder), "
                          "then try again in a minute.", RESEND_VERIFICATION_EVERY_SECONDS)
    uow.record(EventType.EMAIL_VERIFICATION_REQUESTED, subject=f"identity:{view.identity_id}")
    return True
