"""Who must have a second factor, what a session must do first, and what step-up asks: the
rules in core, on the embedded database."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest

from core import clock
from core.errors import Forbidden, ValidationFailed
from core.identity import login, mfa, mfa_policy, recovery_codes, stepup
from core.identity.directory import account_for, identity_by_email
from core.identity.mfa_policy import Gate
from core.identity.models import MfaFactor, Role
from core.identity.sessions import SessionView
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from tests.support.factories import practice
from tests.support.flows import PASSWORD


def _gate(db, email: str, *, production: bool = False) -> Gate | None:
    with system_session(db) as session:
        identity = identity_by_email(session, email)
        return mfa_policy.gate_for(session, identity.id, production=production)


def _set_policy(db, harbour, policy: str) -> None:
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow:
        therapist = account_for(uow.session, harbour.therapist.identity_id, Role.THERAPIST)
        mfa_policy.set_practice_policy(uow, therapist, policy)
        uow.commit()


def test_a_practice_policy_applies_to_its_therapists_and_optionally_its_clients(db):
    harbour = practice(db, "Harbour", slug_hint="harbour")
    elm = practice(db, "Elm", slug_hint="elm")
    assert _gate(db, harbour.therapist_email) is None
    _set_policy(db, harbour, "therapists")
    assert _gate(db, harbour.therapist_email) == Gate.ENROL
    assert _gate(db, harbour.client_email) is None
    assert _gate(db, elm.therapist_email) is None  # another practice's policy is its own
    _set_policy(db, harbour, "everyone")
    assert _gate(db, harbour.client_email) == Gate.ENROL
    with pytest.raises(ValidationFailed):
        _set_policy(db, harbour, "martians")


def test_a_client_cannot_set_the_practice_policy(db):
    harbour = practice(db, "Harbour", slug_hint="harbour")
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow:
        client = account_for(uow.session, harbour.client.identity_id, Role.CLIENT)
        with pytest.raises(Forbidden):
            mfa_policy.set_practice_policy(uow, client, "everyone")


def test_platform_admins_need_a_second_factor_in_production_only(db, settings):
    from core.identity import signup

    with UnitOfWork(db) as uow:
        signup.create_admin(uow, "root@platform.example", PASSWORD)
        uow.commit()
    assert _gate(db, "root@platform.example", production=True) == Gate.ENROL
    assert _gate(db, "root@platform.example", production=False) is None


def _enrolled(db, settings, email: str) -> tuple[SessionView, str]:
    """A confirmed authenticator app; the session view that confirmed it, and the secret."""
    with UnitOfWork(db) as uow:
        identity = identity_by_email(uow.session, email)
        result = login.login(uow, settings, email=email, password=PASSWORD)
        uow.commit()
        view = SessionView(id_hash="0" * 64, identity_id=str(identity.id), email=email,
                           email_verified=True, account_id=str(result.account.id),
                           role=result.account.role, display_name="", tenant_id=None,
                           tenant_name=None, tenant_slug=None, created_at="", last_seen_at="",
                           accounts=())
        factor = mfa.begin_totp(uow, settings, view)
        secret = mfa.totp_setup(settings, factor, email).secret
        codes = mfa.confirm_totp(uow, settings, view, pyotp.TOTP(secret).at(clock.now()))
        uow.commit()
    assert codes is not None and len(codes) == recovery_codes.COUNT
    return view, secret


def test_a_second_factor_means_a_challenge_and_a_step_up(db, settings):
    harbour = practice(db, "Harbour", slug_hint="harbour")
    view, secret = _enrolled(db, settings, harbour.therapist_email)
    assert _gate(db, harbour.therapist_email) == Gate.CHALLENGE
    with system_session(db) as session:
        [factor] = session.query(MfaFactor).all()
        # Encrypted at rest with the settings' key: another key cannot read it.
        assert secret not in factor.secret_encrypted
        other = settings.with_overrides(mfa_encryption_key="")
        other = other.with_overrides(secret_key="another secret key, 32 characters or more")
        with pytest.raises(mfa.EnrolmentExpired):
            mfa.totp_setup(other, factor, "x")
        with pytest.raises(stepup.StepUpRequired):
            stepup.require_fresh_second_factor(session, view)  # never proven in this view
        fresh = SessionView(**{**view.__dict__, "second_factor_at": clock.now().isoformat()})
        stepup.require_fresh_second_factor(session, fresh)
        stale = SessionView(**{**view.__dict__, "second_factor_at":
                               (clock.now() - timedelta(minutes=11)).isoformat()})
        with pytest.raises(stepup.StepUpRequired):
            stepup.require_fresh_second_factor(session, stale)
