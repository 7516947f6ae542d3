"""Passkeys (WebAuthn): registered from a logged-in session, several per person, each named;
used as the second factor after a password, or alone where the person chose that for it.

The challenge a ceremony answers is kept by the caller (web.passkeys: in the cache, for one
ceremony of one browser) and handed in; an assertion is checked against the credential the
database holds for the person who is logging in, so a credential of somebody else is refused
(MFA_FAILED, reason foreign_credential) like a wrong code, and counts towards the lockout.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from core import clock
from core.config import Settings
from core.errors import Conflict, Forbidden, ValidationFailed
from core.events.types import EventType
from core.identity import login, mfa, sessions
from core.identity.directory import landing_account
from core.identity.mfa import SecondFactorFailed
from core.identity.mfa_policy import Gate
from core.identity.models import FactorKind, Identity, MfaFactor
from core.scoping import within_tenant
from core.uow import UnitOfWork

RP_NAME = "Practice Platform"
MAX_NAME = 64


class PasskeyRefused(ValidationFailed):
    def __init__(self) -> None:
        super().__init__({"credential": "That passkey could not be used. Please try again."})


def passkeys_of(session: Session, identity_id: uuid.UUID) -> Sequence[MfaFactor]:
    return session.execute(
        sa.select(MfaFactor).where(MfaFactor.identity_id == identity_id,
                                   MfaFactor.kind == FactorKind.PASSKEY)
    ).scalars().all()


def _descriptors(factors: Sequence[MfaFactor]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=base64url_to_bytes(f.credential_id))
            for f in factors if f.credential_id]


# -- registration ------------------------------------------------------------------------------

def registration_options(session: Session, settings: Settings,
                         view: sessions.SessionView) -> tuple[dict[str, Any], bytes]:
    """The options for navigator.credentials.create, and the challenge to keep."""
    options = generate_registration_options(
        rp_id=settings.rp_id, rp_name=RP_NAME, user_name=view.email,
        user_id=view.identity_uuid.bytes, user_display_name=view.display_name or view.email,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=_descriptors(passkeys_of(session, view.identity_uuid)))
    return json.loads(options_to_json(options)), options.challenge


def register(uow: UnitOfWork, settings: Settings, view: sessions.SessionView, *,
             credential: object, challenge: bytes, name: object,
             passwordless: bool) -> MfaFactor:
    clean = " ".join(name.split()) if isinstance(name, str) else ""
    if not clean or len(clean) > MAX_NAME:
        raise ValidationFailed({"name": f"Give the passkey a name of 1 to {MAX_NAME} "
                                        "characters, such as the device it lives on."})
    if not isinstance(credential, (dict, str)):
        raise PasskeyRefused()
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge,
            expected_rp_id=settings.rp_id, expected_origin=settings.rp_origin)
    except (WebAuthnException, ValueError, KeyError, TypeError):
        raise PasskeyRefused() from None
    credential_id = bytes_to_base64url(verified.credential_id)
    session = uow.session
    taken = session.execute(sa.select(MfaFactor.id)
                            .where(MfaFactor.credential_id == credential_id)).first()
    if taken is not None:
        raise Conflict("That passkey is registered already.")
    now = clock.now()
    factor = MfaFactor(id=uuid.uuid4(), identity_id=view.identity_uuid, kind=FactorKind.PASSKEY,
                       name=clean, credential_id=credential_id,
                       public_key=verified.credential_public_key,
                       sign_count=verified.sign_count, created_at=now, confirmed_at=now,
                       passwordless=passwordless)
    session.add(factor)
    session.flush()
    mfa.record_about(uow, EventType.MFA_ENROLLED, view, kind=FactorKind.PASSKEY, name=clean,
                     passwordless=passwordless)
    mfa.proven_now(session, view, "passkey")
    return factor


# -- authentication ----------------------------------------------------------------------------

def authentication_options(session: Session, settings: Settings,
                           identity_id: uuid.UUID | None) -> tuple[dict[str, Any], bytes]:
    """For a second factor: the person's own passkeys; for a passwordless log-in: any
    discoverable passkey of this site (the browser offers the ones it has)."""
    allowed = _descriptors(passkeys_of(session, identity_id)) if identity_id else []
    options = generate_authentication_options(
        rp_id=settings.rp_id, allow_credentials=allowed,
        user_verification=(UserVerificationRequirement.PREFERRED if identity_id
                           else UserVerificationRequirement.REQUIRED))
    return json.loads(options_to_json(options)), options.challenge


def _credential_id(credential: object) -> str | None:
    if isinstance(credential, str):
        try:
            credential = json.loads(credential)
        except ValueError:
            return None
    if not isinstance(credential, dict):
        return None
    raw = credential.get("rawId") or credential.get("id")
    return raw if isinstance(raw, str) and 0 < len(raw) <= 1400 else None


def _assert(settings: Settings, factor: MfaFactor, credential: object, challenge: bytes, *,
            user_verified: bool) -> bool:
    try:
        verified = verify_authentication_response(
            credential=credential,  # type: ignore[arg-type]
            expected_challenge=challenge, expected_rp_id=settings.rp_id,
            expected_origin=settings.rp_origin, credential_public_key=factor.public_key or b"",
            credential_current_sign_count=factor.sign_count,
            require_user_verification=user_verified)
    except (WebAuthnException, ValueError, KeyError, TypeError):
        return False
    factor.sign_count = verified.new_sign_count
    factor.last_used_at = clock.now()
    return True


def _proven_by(uow: UnitOfWork, settings: Settings, view: sessions.SessionView,
               credential: object, challenge: bytes, *, during: str) -> MfaFactor:
    """The person's own passkey answered the challenge; anything else is a counted failure."""
    session = uow.session
    identity = session.get(Identity, view.identity_uuid)
    credential_id = _credential_id(credential)
    factor = session.execute(
        sa.select(MfaFactor).where(MfaFactor.credential_id == credential_id,
                                   MfaFactor.kind == FactorKind.PASSKEY)
    ).scalar() if credential_id else None
    if identity is None or login.is_locked(identity):
        reason = "locked"
    elif factor is None:
        reason = "unknown_credential"
    elif factor.identity_id != view.identity_uuid:
        reason = "foreign_credential"
    elif not _assert(settings, factor, credential, challenge, user_verified=False):
        reason = "invalid_assertion"
    else:
        login.clear_failures(identity)
        return factor
    if identity is not None and reason != "locked":
        login.count_failure(uow, settings, identity)
    mfa.record_about(uow, EventType.MFA_FAILED, view, reason=reason, during=during,
                     kind=FactorKind.PASSKEY)
    uow.commit_before_refusing()
    raise SecondFactorFailed()


def complete_login(uow: UnitOfWork, settings: Settings, view: sessions.SessionView,
                   credential: object, challenge: bytes) -> str:
    """A gated session proves its second factor with a passkey; returns the new session id."""
    if view.gate != Gate.CHALLENGE:
        raise Forbidden("This session has no second factor to prove.")
    _proven_by(uow, settings, view, credential, challenge, during="login")
    return mfa.rotate(uow, view, factors=f"{view.factors} passkey", gate=None)


def step_up(uow: UnitOfWork, settings: Settings, view: sessions.SessionView,
            credential: object, challenge: bytes) -> None:
    _proven_by(uow, settings, view, credential, challenge, during="step_up")
    mfa.proven_now(uow.session, view, "passkey")


def passwordless_login(uow: UnitOfWork, settings: Settings, credential: object,
                       challenge: bytes) -> login.LoginResult:
    """A passkey the person chose for logging in without a password, verified with its own
    user verification (a PIN or biometric): both factors at once."""
    session = uow.session
    credential_id = _credential_id(credential)
    factor = session.execute(
        sa.select(MfaFactor).where(MfaFactor.credential_id == credential_id,
                                   MfaFactor.kind == FactorKind.PASSKEY)
    ).scalar() if credential_id else None
    identity = session.get(Identity, factor.identity_id) if factor is not None else None
    if (factor is None or identity is None or not factor.passwordless
            or login.is_locked(identity) or identity.email_verified_at is None
            or not _assert(settings, factor, credential, challenge, user_verified=True)):
        uow.record(EventType.LOGIN_FAILED,
                   subject=f"identity:{identity.id}" if identity else None,
                   payload={"via": "passkey"})
        uow.commit_before_refusing()
        raise login.LoginFailed()
    account = landing_account(session, identity)
    if account is None:
        raise login.LoginFailed()
    now = clock.now()
    identity.last_login_at = now
    login.clear_failures(identity)
    with within_tenant(session, account.tenant_id):
        login.record_sign_in(uow, EventType.USER_LOGIN, identity, account,
                             {"role": account.role, "via": "passkey"})
        raw = sessions.start(session, identity, account, ip=uow.origin.ip,
                             user_agent=uow.origin.user_agent, factors="passkey",
                             second_factor_at=now, gate=None)
    return login.LoginResult(identity=identity, account=account, raw_session_id=raw)
