"""Identity use cases, each through its core service on the in-memory adapters."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core import clock
from core.errors import Forbidden, NotFound, RateLimited, ValidationFailed
from core.identity import credentials, invitations, login, sessions, signup
from core.identity.directory import account_for, identity_by_email
from core.identity.models import Account, AuthSession, Invitation, Role, TokenPurpose
from core.identity.tokens import digest
from core.scoping import TenantContext, system_session
from core.tenancy.models import Tenant, TenantStatus
from core.uow import UnitOfWork
from tests.core.conftest import events_of
from tests.support.flows import PASSWORD
from tests.support.tokens import issue_token

ADA = "ada@harbour.example"


def _therapist(db, email: str = ADA, practice: str = "Harbour Counselling") -> Account:
    """A therapist whose address is confirmed and whose practice is open."""
    with UnitOfWork(db) as uow:
        signup.signup_therapist(uow, practice_name=practice, display_name="Ada", email=email,
                                password=PASSWORD)
        uow.commit()
    with system_session(db) as session:
        identity = identity_by_email(session, email)
        identity.email_verified_at = clock.now()
        account = account_for(session, identity.id, Role.THERAPIST)
        session.get(Tenant, account.tenant_id).status = TenantStatus.ACTIVE
        session.commit()
        return account


def _view(db, regions, settings, email: str = ADA) -> sessions.SessionView:
    with UnitOfWork(db) as uow:
        result = login.login(uow, settings, email=email, password=PASSWORD)
        uow.commit()
    with system_session(db) as session:
        view = sessions.load(session, regions, settings, result.raw_session_id)
        session.commit()
    assert view is not None
    return view


# -- sign-up -------------------------------------------------------------------------------------

def test_a_therapist_signs_up_with_a_practice_that_waits_for_onboarding(db):
    account = _therapist(db)
    with system_session(db) as session:
        tenant = session.get(Tenant, account.tenant_id)
        identity = identity_by_email(session, ADA)
    assert account.id == identity.id  # the first account's id is the identity's
    assert tenant.slug == "harbour-counselling"
    assert [e.type for e in events_of(db, "USER_CREATED")] == ["USER_CREATED"]
    assert events_of(db, "TENANT_CREATED") and events_of(db, "ONBOARDING_STARTED")


def test_sign_up_reports_every_invalid_field_at_once(unit):
    with pytest.raises(ValidationFailed) as failed:
        signup.signup_therapist(unit, practice_name=" ", display_name="\x00", email="nope",
                                password="short")
    assert set(failed.value.errors) == {"practice_name", "display_name", "email", "password"}


def test_a_known_address_is_told_by_e_mail_not_by_the_answer(db):
    _therapist(db)
    with UnitOfWork(db) as uow:
        outcome = signup.signup_therapist(uow, practice_name="Another", display_name="Ada",
                                          email=ADA.upper(), password=PASSWORD)
        uow.commit()
    assert outcome is signup.SignupOutcome.ALREADY_REGISTERED
    assert len(events_of(db, "SIGNUP_EMAIL_EXISTS")) == 1
    with system_session(db) as session:  # the rehearsal left nothing behind
        assert session.scalar(sa.select(sa.func.count()).select_from(Tenant)) == 1


def test_a_client_joins_an_open_practice_only(db):
    account = _therapist(db)
    with system_session(db) as session:
        slug = session.get(Tenant, account.tenant_id).slug
    with UnitOfWork(db) as uow:
        signup.signup_client(uow, tenant_slug=slug, display_name="Bo", email="bo@example.com",
                             password=PASSWORD)
        uow.commit()
    with UnitOfWork(db) as uow, pytest.raises(NotFound):
        signup.signup_client(uow, tenant_slug="no-such-practice", display_name="Cy",
                             email="cy@example.com", password=PASSWORD)


def test_one_person_holds_one_account_per_role(db, regions, settings):
    _therapist(db)
    view = _view(db, regions, settings)
    with UnitOfWork(db) as uow, pytest.raises(Forbidden):
        signup.add_therapist_account(uow, view.identity_uuid, practice_name="Second",
                                     display_name="Ada")


# -- invitations ---------------------------------------------------------------------------------

def test_an_invitation_is_accepted_once_and_proves_the_address(db):
    therapist = _therapist(db)
    raw = "raw-invitation-token"
    with UnitOfWork(db, tenant=TenantContext.of(therapist.tenant_id)) as uow:
        invitation = invitations.invite_client(uow, therapist, "bo@example.com")
        invitation.token_hash = digest(raw)  # as the e-mail handler does when it sends it
        uow.commit()
    with UnitOfWork(db) as uow:
        client = invitations.accept_invitation(uow, raw, display_name="Bo", password=PASSWORD)
        uow.commit()
    with system_session(db) as session:
        assert identity_by_email(session, "bo@example.com").email_verified_at is not None
        assert session.get(Invitation, invitation.id).accepted_account_id == client.id
    with UnitOfWork(db) as uow, pytest.raises(NotFound):
        invitations.open_invitation(uow.session, raw)


def test_another_practices_invitation_cannot_be_revoked(db):
    harbour = _therapist(db)
    elm = _therapist(db, "elm@elm.example", "Elm Street")
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant_id)) as uow:
        invitation = invitations.invite_client(uow, harbour, "bo@example.com")
        uow.commit()
    with UnitOfWork(db, tenant=TenantContext.of(elm.tenant_id)) as uow, pytest.raises(NotFound):
        invitations.revoke_invitation(uow, invitation.id)


def test_an_unconfirmed_therapist_cannot_invite(unit, db):
    with UnitOfWork(db) as uow:
        signup.signup_therapist(uow, practice_name="New", display_name="N",
                                email="n@new.example", password=PASSWORD)
        uow.commit()
    with system_session(db) as session:
        therapist = account_for(session, identity_by_email(session, "n@new.example").id,
                                Role.THERAPIST)
    with pytest.raises(Forbidden, match="Confirm your own e-mail"):
        invitations.invite_client(unit, therapist, "bo@example.com")


# -- login, sessions -----------------------------------------------------------------------------

def test_a_failed_login_is_counted_and_recorded_though_it_is_refused(db, settings):
    _therapist(db)
    with UnitOfWork(db) as uow, pytest.raises(login.LoginFailed):
        login.login(uow, settings, email=ADA, password="not the password")
    # The unit was never committed by the caller: the failure was kept anyway.
    with system_session(db) as session:
        assert identity_by_email(session, ADA).failed_logins == 1
    [failure] = events_of(db, "LOGIN_FAILED")
    assert failure.payload == {"email_domain": "harbour.example"}


def test_an_unknown_address_fails_the_same_way(db, settings):
    with UnitOfWork(db) as uow, pytest.raises(login.LoginFailed) as failed:
        login.login(uow, settings, email="who@example.com", password=PASSWORD)
    assert str(failed.value).startswith("That e-mail and password do not match")
    [failure] = events_of(db, "LOGIN_FAILED")
    assert failure.subject is None


def test_switching_role_ends_the_old_session(db, regions, settings):
    _therapist(db)
    view = _view(db, regions, settings)
    with UnitOfWork(db) as uow:
        signup.add_client_account(uow, view.identity_uuid, _open_practice(db),
                                  display_name="Ada as a client")
        result = login.session_for_new_account(uow, view, Role.CLIENT)
        uow.commit()
    assert result.account.role == Role.CLIENT
    with system_session(db) as session:
        assert session.get(AuthSession, view.id_hash).ended_reason == "rotated"
        assert sessions.load(session, regions, settings, result.raw_session_id) is not None


def _open_practice(db) -> Tenant:
    _therapist(db, "elm@elm.example", "Elm Street")
    with system_session(db) as session:
        tenant = session.execute(sa.select(Tenant).where(Tenant.slug == "elm-street")).scalar_one()
        session.expunge(tenant)
        return tenant


def test_revoking_someone_elses_session_is_not_found(db, regions, settings):
    _therapist(db)
    _therapist(db, "elm@elm.example", "Elm Street")
    ada, elm = _view(db, regions, settings), _view(db, regions, settings, "elm@elm.example")
    with UnitOfWork(db) as uow, pytest.raises(NotFound):
        sessions.revoke_session(uow, ada, elm.id_hash)
    with UnitOfWork(db) as uow:
        assert sessions.revoke_other_sessions(uow, ada) == 0


# -- credentials ---------------------------------------------------------------------------------

def test_a_password_change_needs_the_current_one_and_ends_other_sessions(db, regions, settings):
    _therapist(db)
    first, second = _view(db, regions, settings), _view(db, regions, settings)
    with UnitOfWork(db) as uow, pytest.raises(ValidationFailed) as wrong:
        credentials.change_password(uow, first, current="wrong", new="a new passphrase")
    assert set(wrong.value.errors) == {"current_password"}
    with UnitOfWork(db) as uow:
        credentials.change_password(uow, first, current=PASSWORD,
                                    new="a brand new passphrase")
        uow.commit()
    with system_session(db) as session:
        assert session.get(AuthSession, second.id_hash).ended_reason == "password_changed"
        assert session.get(AuthSession, first.id_hash).revoked_at is None


def test_a_reset_link_works_once(db):
    _therapist(db)
    with system_session(db) as session:
        raw = issue_token(session, identity_by_email(session, ADA).id, TokenPurpose.RESET_PASSWORD)
        session.commit()
    with UnitOfWork(db) as uow:
        credentials.reset_password(uow, raw, "another good passphrase")
        uow.commit()
    with UnitOfWork(db) as uow, pytest.raises(NotFound):
        credentials.reset_password(uow, raw, "yet another passphrase")


def test_asking_for_a_confirmation_link_again_and_again_is_refused(db, cache, settings, regions):
    with UnitOfWork(db) as uow:
        signup.signup_therapist(uow, practice_name="New", display_name="N",
                                email="n@new.example", password=PASSWORD)
        uow.commit()
    with system_session(db) as session:
        identity = identity_by_email(session, "n@new.example")
        raw = sessions.start(session, identity, account_for(session, identity.id, "therapist"),
                             ip=None, user_agent=None)
        session.commit()
        view = sessions.load(session, regions, settings, raw)
    with UnitOfWork(db) as uow:
        assert credentials.resend_verification(uow, cache, view) is True
        uow.commit()
    with UnitOfWork(db) as uow, pytest.raises(RateLimited):
        credentials.resend_verification(uow, cache, view)


def test_a_client_can_start_a_practice_of_their_own(db, regions, settings):
    """Found by make proof: a logged-in person's new practice was inserted after its account."""
    harbour = _therapist(db)
    with system_session(db) as session:
        slug = session.get(Tenant, harbour.tenant_id).slug
    with UnitOfWork(db) as uow:
        signup.signup_client(uow, tenant_slug=slug, display_name="Bo", email="bo@example.com",
                             password=PASSWORD)
        uow.commit()
    with system_session(db) as session:
        identity = identity_by_email(session, "bo@example.com")
        identity.email_verified_at = clock.now()
        session.commit()
    bo = _view(db, regions, settings, "bo@example.com")
    with UnitOfWork(db) as uow:
        account = signup.add_therapist_account(uow, bo.identity_uuid, practice_name="Bo's",
                                               display_name="Bo")
        uow.commit()
    with system_session(db) as session:
        assert session.get(Tenant, account.tenant_id).slug == "bo-s"
