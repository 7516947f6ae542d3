"""A practice's first day, use case by use case: invitations that expire and are resent, the
client directory, removing a client, profiles, e-mail changes, practice settings."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from core import clock
from core.caching import CachedRegions
from core.errors import NotFound, RateLimited, ValidationFailed
from core.identity import (
    clients,
    email_change,
    invitations,
    login,
    practice,
    profile,
    sessions,
    signup,
    tokens,
)
from core.identity.directory import account_for, identity_by_email
from core.identity.invitations import InvitationState, state_of
from core.identity.models import Account, AuthSession, Identity, Invitation, Role, TokenPurpose
from core.identity.zones import time_zone_of
from core.onboarding import navigation
from core.onboarding import service as onboarding
from core.onboarding.service import AnswersInvalid
from core.scoping import TenantContext, system_session
from core.tenancy.models import Tenant
from core.uow import UnitOfWork
from tests.core.conftest import events_of
from tests.core.test_identity_use_cases import ADA, _therapist, _view
from tests.support.factories import finish_onboarding
from tests.support.flows import PASSWORD
from tests.support.tokens import issue_token


@pytest.fixture
def moved(monkeypatch):
    """clock.now() plus an offset the test moves forward."""
    real, offset = clock.now, [timedelta(0)]
    monkeypatch.setattr(clock, "now", lambda: real() + offset[0])
    return lambda by: offset.__setitem__(0, offset[0] + by)


def _in(db, therapist: Account) -> UnitOfWork:
    return UnitOfWork(db, tenant=TenantContext.of(therapist.tenant_id))


def _invitation(db, invitation_id) -> Invitation:
    with system_session(db) as session:
        return session.get(Invitation, invitation_id)


# -- invitations ---------------------------------------------------------------------------------

def test_inviting_an_address_again_resends_the_one_invitation_after_the_cooldown(db, moved):
    therapist = _therapist(db)
    with _in(db, therapist) as uow:
        first = invitations.invite_client(uow, therapist, "bo@example.com")
        uow.commit()
    with _in(db, therapist) as uow, pytest.raises(ValidationFailed, match="10 minutes"):
        invitations.invite_client(uow, therapist, "BO@example.com")
    with _in(db, therapist) as uow, pytest.raises(RateLimited):
        invitations.resend_invitation(uow, therapist, first.id)
    moved(timedelta(minutes=11))
    with _in(db, therapist) as uow:
        again = invitations.invite_client(uow, therapist, "bo@example.com")
        uow.commit()
    assert again.id == first.id
    stored = _invitation(db, first.id)
    assert stored.send_count == 2
    assert stored.expires_at - stored.last_sent_at == invitations.INVITATION_LIFETIME
    assert [e.payload["resend"] for e in events_of(db, "INVITATION_SENT")] == [False, True]
    with system_session(db) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Invitation)) == 1


def test_an_invitation_is_pending_then_expired_and_a_resend_revives_it(db, moved):
    therapist = _therapist(db)
    with _in(db, therapist) as uow:
        invitation = invitations.invite_client(uow, therapist, "bo@example.com")
        uow.commit()
    assert state_of(_invitation(db, invitation.id)) is InvitationState.PENDING
    moved(timedelta(days=7, minutes=1))
    assert state_of(_invitation(db, invitation.id)) is InvitationState.EXPIRED
    with _in(db, therapist) as uow:
        invitations.resend_invitation(uow, therapist, invitation.id)
        uow.commit()
    assert state_of(_invitation(db, invitation.id)) is InvitationState.PENDING


def test_a_link_says_whether_it_was_used_expired_withdrawn_or_replaced(db, moved):
    therapist = _therapist(db)
    with _in(db, therapist) as uow:
        used = invitations.invite_client(uow, therapist, "used@example.com")
        gone = invitations.invite_client(uow, therapist, "gone@example.com")
        late = invitations.invite_client(uow, therapist, "late@example.com")
        links = {}
        for invitation in (used, gone, late):
            links[invitation.email] = tokens.new_secret()
            invitation.token_hash = tokens.digest(links[invitation.email])
        uow.commit()
    with UnitOfWork(db) as uow:
        invitations.accept_invitation(uow, links["used@example.com"], display_name="Used",
                                      password=PASSWORD)
        uow.commit()
    with _in(db, therapist) as uow:
        invitations.revoke_invitation(uow, gone.id)
        uow.commit()
    moved(timedelta(days=8))
    with UnitOfWork(db) as uow:
        states = {email: invitations.follow_link(uow.session, raw).state
                  for email, raw in links.items()}
        unknown = invitations.follow_link(uow.session, "no-such-link")
    assert states == {"used@example.com": InvitationState.ACCEPTED,
                      "gone@example.com": InvitationState.REVOKED,
                      "late@example.com": InvitationState.EXPIRED}
    assert unknown.state is None and "newer invitation" in unknown.message
    assert len(events_of(db, "INVITATION_REVOKED")) == 1


def test_an_expired_link_asks_the_practice_for_a_new_invitation_once_a_day(db, moved):
    therapist = _therapist(db)
    raw = tokens.new_secret()
    with _in(db, therapist) as uow:
        invitation = invitations.invite_client(uow, therapist, "late@example.com")
        invitation.token_hash = tokens.digest(raw)
        uow.commit()
    with UnitOfWork(db) as uow, pytest.raises(NotFound):  # still pending: nothing to ask
        invitations.request_renewal(uow, raw)
    moved(timedelta(days=8))
    for _ in range(2):
        with UnitOfWork(db) as uow:
            invitations.request_renewal(uow, raw)
            uow.commit()
    [asked] = events_of(db, "INVITATION_RENEWAL_REQUESTED")
    assert asked.actor_account_id == therapist.id  # the therapist who sent it hears of it


# -- the client directory ------------------------------------------------------------------------

def _clients(db, therapist: Account, count: int) -> None:
    with system_session(db) as session:
        slug = session.get(Tenant, therapist.tenant_id).slug
    with UnitOfWork(db) as uow:
        for n in range(count):
            signup.signup_client(uow, tenant_slug=slug, display_name=f"Client {n:02d}",
                                 email=f"client{n:02d}@example.com", password=PASSWORD)
        uow.commit()


def test_the_directory_pages_forwards_and_back_without_gaps_or_repeats(db):
    therapist = _therapist(db)
    _clients(db, therapist, 25)
    with _in(db, therapist) as uow:
        first = clients.client_page(uow.session, clients.ClientQuery(), size=10)
        second = clients.client_page(uow.session, clients.ClientQuery(after=first.next_cursor),
                                     size=10)
        third = clients.client_page(uow.session, clients.ClientQuery(after=second.next_cursor),
                                    size=10)
        back = clients.client_page(uow.session,
                                   clients.ClientQuery(before=third.previous_cursor), size=10)
    names = [r.display_name for page in (first, second, third) for r in page.rows]
    assert names == [f"Client {n:02d}" for n in range(25)]
    assert first.previous_cursor is None and third.next_cursor is None
    assert [r.display_name for r in back.rows] == [r.display_name for r in second.rows]
    assert first.total == 25


def test_the_directory_searches_and_sorts_and_shrugs_off_a_bad_cursor(db):
    therapist = _therapist(db)
    _clients(db, therapist, 12)
    with _in(db, therapist) as uow:
        found = clients.client_page(uow.session, clients.ClientQuery(search="CLIENT1"))
        newest = clients.client_page(uow.session, clients.ClientQuery.parse(
            search=None, sort="joined", direction="desc", after=None, before=None))
        odd = clients.client_page(uow.session, clients.ClientQuery.parse(
            search="100%_", sort="nonsense", direction="sideways", after="garbage!",
            before=None))
    assert [r.email for r in found.rows] == [f"client1{n}@example.com" for n in range(2)]
    assert found.matching == 2 and found.total == 12
    joined = [r.joined_at for r in newest.rows]
    assert joined == sorted(joined, reverse=True)
    assert odd.rows == [] and odd.query.sort == "name"
    assert all(not r.set_up and r.stage == "STARTED" for r in newest.rows)


# -- a therapist's actions about a client --------------------------------------------------------

def _joined_client(db, therapist: Account) -> Account:
    _clients(db, therapist, 1)
    with system_session(db) as session:
        identity = identity_by_email(session, "client00@example.com")
        identity.email_verified_at = clock.now()
        session.commit()
        return account_for(session, identity.id, Role.CLIENT)


def test_a_reminder_goes_at_most_hourly_and_never_after_set_up(db, moved):
    therapist = _therapist(db)
    client = _joined_client(db, therapist)
    with _in(db, therapist) as uow:
        clients.remind_client(uow, therapist, client.id)
        uow.commit()
    with _in(db, therapist) as uow, pytest.raises(RateLimited):
        clients.remind_client(uow, therapist, client.id)
    assert len(events_of(db, "ONBOARDING_REMINDER_REQUESTED")) == 1
    finish_onboarding(db, client)
    moved(timedelta(hours=2))
    with _in(db, therapist) as uow, pytest.raises(ValidationFailed, match="finished"):
        clients.remind_client(uow, therapist, client.id)


def _logged_in(db, regions, settings, email: str = ADA) -> tuple[sessions.SessionView, str]:
    with UnitOfWork(db) as uow:
        raw = login.login(uow, settings, email=email, password=PASSWORD).raw_session_id
        uow.commit()
    with system_session(db) as session:
        view = sessions.load(session, regions, settings, raw)
        session.commit()
    assert view is not None
    return view, raw


def test_removing_a_client_keeps_their_identity_and_ends_their_sessions(db, cache, regions,
                                                                        settings):
    therapist = _therapist(db)
    client = _joined_client(db, therapist)
    view, raw = _logged_in(db, regions, settings, "client00@example.com")
    with _in(db, therapist) as uow:
        clients.remove_client(uow, therapist, client.id)
        uow.commit()
    with system_session(db) as session:
        assert session.get(Account, client.id) is None
        assert session.get(Identity, client.identity_id) is not None
        record = session.get(AuthSession, view.id_hash)
        assert record.ended_reason == "removed"
    # Ended at once, on every process: another process's regions over the same cache.
    with system_session(db) as session:
        assert sessions.load(session, CachedRegions(cache), settings, raw) is None
    [removed] = events_of(db, "CLIENT_REMOVED")
    assert (removed.actor_account_id, removed.tenant_id) == (therapist.id, therapist.tenant_id)
    with _in(db, therapist) as uow, pytest.raises(NotFound):
        clients.client_detail(uow.session, client.id)


# -- settings ------------------------------------------------------------------------------------

def test_set_up_starts_with_what_sign_up_asked(db):
    therapist = _therapist(db)
    with _in(db, therapist) as uow:
        progress = onboarding.of_account(uow.session, therapist.id)
    assert progress.data == {"PERSONAL_INFO": {"full_name": "Ada"},
                             "PROFESSIONAL_INFO": {"practice_display_name": "Harbour Counselling"}}


def _zone(db, regions, account_id) -> str | None:
    with system_session(db) as session:
        return (navigation.status(session, regions, account_id) or {}).get("time_zone")


def test_a_profile_change_moves_the_time_zone_and_refuses_half_valid_answers(db, regions,
                                                                            settings):
    therapist = _therapist(db)
    finish_onboarding(db, therapist)
    view = _view(db, regions, settings)
    assert _zone(db, regions, therapist.id) == "Europe/London"  # what every page reads
    answers = {"full_name": "Ada L", "phone": "+81 3 1234 5678", "time_zone": "Asia/Tokyo",
               "preferred_language": "en"}
    with _in(db, therapist) as uow, pytest.raises(AnswersInvalid) as refused:
        profile.update_profile(uow, view, display_name=" ",
                               answers={**answers, "time_zone": "Mars/Olympus"})
    assert set(refused.value.errors) == {"display_name", "time_zone"}
    with _in(db, therapist) as uow:
        profile.update_profile(uow, view, display_name="Dr Ada", answers=answers)
        uow.commit()
    with system_session(db) as session:
        assert time_zone_of(session, view.identity_uuid) == "Asia/Tokyo"
        assert session.get(Account, therapist.id).display_name == "Dr Ada"
    assert _zone(db, regions, therapist.id) == "Asia/Tokyo"  # from the very next page on
    assert events_of(db, "PROFILE_UPDATED")


def test_an_e_mail_change_waits_for_the_new_address_and_tells_the_old_one(db, regions,
                                                                         settings):
    _therapist(db)
    _therapist(db, "taken@elm.example", "Elm Street")
    view = _view(db, regions, settings)
    with UnitOfWork(db) as uow, pytest.raises(ValidationFailed) as refused:
        email_change.request_email_change(uow, view, new_email="taken@elm.example",
                                          password="wrong")
    assert set(refused.value.errors) == {"password"}
    with UnitOfWork(db) as uow, pytest.raises(ValidationFailed, match="Another login"):
        email_change.request_email_change(uow, view, new_email="taken@elm.example",
                                          password=PASSWORD)
    with UnitOfWork(db) as uow:
        email_change.request_email_change(uow, view, new_email="ada@new.example",
                                          password=PASSWORD)
        uow.commit()
    with system_session(db) as session:
        assert identity_by_email(session, ADA) is not None  # nothing changed yet
        raw = issue_token(session, view.identity_uuid, TokenPurpose.CHANGE_EMAIL,
                          new_email="ada@new.example")
        session.commit()
    with UnitOfWork(db) as uow:
        email_change.confirm_email_change(uow, raw)
        uow.commit()
    with UnitOfWork(db) as uow, pytest.raises(NotFound):
        email_change.confirm_email_change(uow, raw)  # once
    with system_session(db) as session:
        assert identity_by_email(session, "ada@new.example").id == view.identity_uuid
    [changed] = events_of(db, "EMAIL_CHANGED")
    assert changed.payload == {"personal": {"old_email": ADA, "new_email": "ada@new.example"}}


def test_a_new_join_link_retires_the_old_one_and_the_link_can_be_switched_off(db, regions,
                                                                             settings):
    therapist = _therapist(db)
    view = _view(db, regions, settings)
    with system_session(db) as session:
        slug = session.get(Tenant, therapist.tenant_id).slug
    with _in(db, therapist) as uow:
        tenant = practice.regenerate_join_link(uow, therapist)
        code = practice.join_link(tenant).code
        uow.commit()
    with UnitOfWork(db) as uow:
        with pytest.raises(NotFound, match="no longer works"):
            signup.practice_to_join(uow.session, slug)
        assert signup.practice_to_join(uow.session, slug, code).id == therapist.tenant_id
    with _in(db, therapist) as uow:
        practice.update_practice(uow, therapist, view, name="Harbour & Co",
                                 join_link_enabled=False)
        uow.commit()
    with UnitOfWork(db) as uow, pytest.raises(NotFound):
        signup.practice_to_join(uow.session, slug, code)
    with system_session(db) as session:
        assert session.get(Tenant, therapist.tenant_id).name == "Harbour & Co"
