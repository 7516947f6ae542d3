"""A second factor: authenticator apps (TOTP, RFC 6238), recovery codes, and the sessions that
prove them.

* A TOTP secret is stored encrypted (Fernet, `Settings.mfa_key`); a factor counts once its first
  code is accepted. A code is accepted once: the time step it belongs to is kept, and a code of
  that step or an earlier one is a replay.
* Recovery codes (core.identity.recovery_codes) stand in for a lost factor, once each; using
  one e-mails the owner.
* A wrong code counts towards the same lockout as a wrong password (core.identity.login), is
  recorded as MFA_FAILED, and the count is kept although the request is refused.
* Proving a factor at log-in rotates the session id; proving it again later (step-up) notes the
  time on the session (core.identity.stepup).
"""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.orm import Session

from core import clock
from core.config import Settings
from core.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from core.events.types import EventType
from core.identity import login, recovery_codes, sessions
from core.identity.directory import account_for
from core.identity.mfa_policy import Gate, has_second_factor
from core.identity.models import (
    AuthSession,
    FactorKind,
    Identity,
    MfaFactor,
    RecoveryCode,
)
from core.scoping import within_tenant
from core.text import storable_text
from core.uow import UnitOfWork

ISSUER = "Practice Platform"
TOTP_PERIOD = 30
# A gated session (a password, no second factor yet) lasts this long before it must start over.
CHALLENGE_LIFETIME = timedelta(minutes=10)


class SecondFactorFailed(Unauthenticated):
    def __init__(self) -> None:
        super().__init__("That code is not right, has been used already, or the login is "
                         "locked for a while after too many attempts.")


class EnrolmentExpired(NotFound):
    def __init__(self) -> None:
        super().__init__("Start setting up the authenticator app again.")


@dataclass(frozen=True)
class Proof:
    """Which factor a code proved: "totp" or "recovery"."""

    factor: str


# -- secrets at rest ---------------------------------------------------------------------------

def _fernet(settings: Settings) -> Fernet:
    return Fernet(settings.mfa_key)


def _secret(settings: Settings, factor: MfaFactor) -> str:
    try:
        return _fernet(settings).decrypt((factor.secret_encrypted or "").encode()).decode()
    except InvalidToken:
        # Encrypted under another key (MFA_ENCRYPTION_KEY changed): this app no longer works.
        return ""


# -- reading -----------------------------------------------------------------------------------

def factors_of(session: Session, identity_id: uuid.UUID) -> Sequence[MfaFactor]:
    """Confirmed factors, oldest first."""
    return session.execute(
        sa.select(MfaFactor).where(MfaFactor.identity_id == identity_id,
                                   MfaFactor.confirmed_at.is_not(None))
        .order_by(MfaFactor.created_at)
    ).scalars().all()


def pending_totp(session: Session, identity_id: uuid.UUID) -> MfaFactor | None:
    return session.execute(
        sa.select(MfaFactor).where(MfaFactor.identity_id == identity_id,
                                   MfaFactor.kind == FactorKind.TOTP,
                                   MfaFactor.confirmed_at.is_(None))
        .order_by(MfaFactor.created_at.desc()).limit(1)
    ).scalar()


@dataclass(frozen=True)
class TotpSetup:
    secret: str
    uri: str


def totp_setup(settings: Settings, factor: MfaFactor, email: str) -> TotpSetup:
    secret = _secret(settings, factor)
    if not secret:
        raise EnrolmentExpired()  # encrypted under another key: start again
    return TotpSetup(secret=secret,
                     uri=pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER))


# -- enrolment ---------------------------------------------------------------------------------

def begin_totp(uow: UnitOfWork, settings: Settings, view: sessions.SessionView) -> MfaFactor:
    """A new, unconfirmed authenticator app (an earlier unconfirmed one is replaced)."""
    session = uow.session
    session.execute(sa.delete(MfaFactor).where(MfaFactor.identity_id == view.identity_uuid,
                                               MfaFactor.kind == FactorKind.TOTP,
                                               MfaFactor.confirmed_at.is_(None)))
    secret = pyotp.random_base32()
    factor = MfaFactor(id=uuid.uuid4(), identity_id=view.identity_uuid, kind=FactorKind.TOTP,
                       name="Authenticator app", created_at=clock.now(), sign_count=0,
                       secret_encrypted=_fernet(settings).encrypt(secret.encode()).decode())
    session.add(factor)
    return factor


def confirm_totp(uow: UnitOfWork, settings: Settings, view: sessions.SessionView,
                 code: str) -> list[str] | None:
    """The first code from the app confirms it. Returns the new recovery codes when this is the
    person's first factor (shown once), else None."""
    session = uow.session
    factor = pending_totp(session, view.identity_uuid)
    if factor is None:
        raise EnrolmentExpired()
    step = _matching_step(_secret(settings, factor), code)
    if step is None:
        raise ValidationFailed({"code": "That code is not right. Enter the 6 digits the app "
                                        "shows now."})
    first = not has_second_factor(session, view.identity_uuid)
    now = clock.now()
    factor.confirmed_at = now
    factor.last_used_step = step
    factor.last_used_at = now
    record_about(uow, EventType.MFA_ENROLLED, view, kind=FactorKind.TOTP, name=factor.name)
    proven_now(session, view, "totp")
    return recovery_codes.issue(uow, view) if first else None


def rename_factor(uow: UnitOfWork, view: sessions.SessionView, factor_id: uuid.UUID,
                  name: str) -> MfaFactor:
    factor = own_factor(uow.session, view, factor_id)
    clean = " ".join((name or "").split())
    if not clean or len(clean) > 64:
        raise ValidationFailed({"name": "Give it a name of 1 to 64 characters."})
    factor.name = clean
    return factor


def remove_factor(uow: UnitOfWork, view: sessions.SessionView, factor_id: uuid.UUID) -> None:
    """Remove one of your own factors (the caller has checked a fresh second factor). With the
    last one go the recovery codes: they recover a second factor there no longer is."""
    session = uow.session
    factor = own_factor(session, view, factor_id)
    session.delete(factor)
    session.flush()
    left = has_second_factor(session, view.identity_uuid)
    if not left:
        session.execute(sa.delete(RecoveryCode)
                        .where(RecoveryCode.identity_id == view.identity_uuid))
    record_about(uow, EventType.MFA_REMOVED, view, kind=factor.kind, name=factor.name,
            last=not left)


def own_factor(session: Session, view: sessions.SessionView,
                factor_id: uuid.UUID) -> MfaFactor:
    factor = session.get(MfaFactor, factor_id)
    if factor is None or factor.identity_id != view.identity_uuid or factor.confirmed_at is None:
        raise NotFound("No such second factor.")  # another person's is simply not found
    return factor


# -- proving a factor --------------------------------------------------------------------------

def _matching_step(secret: str, code: str) -> int | None:
    """The time step whose code `code` is (now, or one step either side for clock drift)."""
    digits = re.sub(r"\s", "", code or "")
    if not secret or not re.fullmatch(r"\d{6}", digits):
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(clock.now().timestamp()) // TOTP_PERIOD
    for step in (now_step, now_step - 1, now_step + 1):
        if hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None


def _verify(uow: UnitOfWork, settings: Settings, view: sessions.SessionView, code: str,
            *, during: str) -> Proof:
    """Check a code (an app's or a recovery code); a failure is counted, recorded and kept."""
    session = uow.session
    identity = session.get(Identity, view.identity_uuid)
    if identity is None:
        raise NotFound("No such identity.")
    reason = "locked" if login.is_locked(identity) else _try(uow, settings, view, identity, code)
    if reason is None:
        login.clear_failures(identity)  # both factors proven: the guessing budget starts again
        return Proof("recovery" if not re.fullmatch(r"\s*\d{6}\s*", code or "") else "totp")
    if reason != "locked":
        login.count_failure(uow, settings, identity)
    record_about(uow, EventType.MFA_FAILED, view, reason=reason, during=during)
    uow.commit_before_refusing()  # the count, a lockout, the MFA_FAILED entry
    raise SecondFactorFailed()


def _try(uow: UnitOfWork, settings: Settings, view: sessions.SessionView, identity: Identity,
         code: str) -> str | None:
    """None when the code is good (and now used up); else why not."""
    session = uow.session
    if re.fullmatch(r"\s*\d{6}\s*", code or ""):
        # Locked rows: two requests with one code cannot both see it unused.
        factors = session.execute(
            sa.select(MfaFactor).where(MfaFactor.identity_id == identity.id,
                                       MfaFactor.kind == FactorKind.TOTP,
                                       MfaFactor.confirmed_at.is_not(None))
            .with_for_update()
        ).scalars().all()
        replayed = False
        for factor in factors:
            step = _matching_step(_secret(settings, factor), code)
            if step is None:
                continue
            if factor.last_used_step is not None and step <= factor.last_used_step:
                replayed = True
                continue
            factor.last_used_step = step
            factor.last_used_at = clock.now()
            return None
        return "replay" if replayed else "wrong_code"
    left = recovery_codes.use(session, identity.id, code)
    if left is None:
        return "wrong_code"
    record_about(uow, EventType.RECOVERY_CODE_USED, view, left=left)
    return None


def complete_login(uow: UnitOfWork, settings: Settings, view: sessions.SessionView,
                   code: str) -> str:
    """A gated session proves its second factor: it is ended and a free one started (a new id,
    so nothing learnt before this point carries over). Returns the new raw session id."""
    if view.gate != Gate.CHALLENGE:
        raise Forbidden("This session has no second factor to prove.")
    proof = _verify(uow, settings, view, code, during="login")
    return rotate(uow, view, factors=f"{view.factors} {proof.factor}", gate=None)


def step_up(uow: UnitOfWork, settings: Settings, view: sessions.SessionView, code: str) -> None:
    """Prove the second factor again, for a sensitive action (core.identity.stepup)."""
    proof = _verify(uow, settings, view, code, during="step_up")
    proven_now(uow.session, view, proof.factor)


def proven_now(session: Session, view: sessions.SessionView, factor: str) -> None:
    record = session.get(AuthSession, view.id_hash)
    if record is None:
        return
    record.second_factor_at = clock.now()
    if factor not in record.factors.split():
        record.factors = storable_text(f"{record.factors} {factor}", 64) or record.factors
    if record.gate == Gate.ENROL:
        record.gate = None
    if factor in ("totp", "passkey"):  # an enrolment frees every session waiting for it
        others = session.execute(
            sa.select(AuthSession).where(AuthSession.identity_id == view.identity_uuid,
                                         AuthSession.revoked_at.is_(None),
                                         AuthSession.gate == Gate.ENROL)
        ).scalars().all()
        for other in others:
            other.gate = Gate.CHALLENGE if other.id_hash != view.id_hash else None


def rotate(uow: UnitOfWork, view: sessions.SessionView, *, factors: str,
            gate: str | None) -> str:
    session = uow.session
    identity = session.get(Identity, view.identity_uuid)
    account = account_for(session, view.identity_uuid, view.role)
    if identity is None or account is None:
        raise NotFound("No account.")
    sessions.end(session, view.id_hash, "rotated")
    with within_tenant(session, account.tenant_id):
        return sessions.start(session, identity, account, ip=uow.origin.ip,
                              user_agent=uow.origin.user_agent,
                              factors=storable_text(factors, 64) or "password",
                              second_factor_at=clock.now(), gate=gate)


def challenge_expired(view: sessions.SessionView) -> bool:
    return (view.gate == Gate.CHALLENGE
            and clock.now() - datetime.fromisoformat(view.created_at) > CHALLENGE_LIFETIME)


def record_about(uow: UnitOfWork, type: EventType, view: sessions.SessionView,
            **payload: object) -> None:
    uow.record(type, tenant_id=None, actor_account_id=view.account_uuid,
               subject=f"identity:{view.identity_id}", payload=dict(payload))
