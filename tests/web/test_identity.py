"""Identity, role accounts and sessions, through the pages a person uses."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from core import clock
from core.audit.models import AuditEntry
from core.identity.models import Account, AuthSession, Identity, Invitation
from core.tenancy.models import Tenant
from tests.support.flows import (
    PASSWORD,
    complete_onboarding,
    confirm,
    link_in,
    login,
    logout,
    post_form,
    session_cookie,
    signup_therapist,
)

THERAPIST = "ada@harbour.example"


def _verified_therapist(platform, client, email=THERAPIST, practice="Harbour Counselling"):
    """Signed up, address confirmed, set-up finished and the practice active."""
    response = signup_therapist(client, email=email, practice=practice)
    assert response.status_code == 200
    link = link_in(platform.last_mail_to(email), "/verify-email/")
    assert confirm(client, link).status_code == 302
    complete_onboarding(client, "therapist")
    platform.settle()  # the practice is initialised by a worker
    return link


def test_therapist_signup_creates_identity_account_and_provisioning_practice(platform):
    client = platform.client()
    response = signup_therapist(client, email="  Ada@Harbour.Example ", practice="Harbour & Co")
    assert response.status_code == 200
    assert "Check your e-mail" in response.get_data(as_text=True)
    [identity] = platform.rows(Identity)
    [account] = platform.rows(Account)
    [tenant] = platform.rows(Tenant)
    assert identity.email == THERAPIST and identity.email_verified_at is None
    assert identity.password_hash.startswith("$argon2id$")
    assert account.id == identity.id  # the first account's id is the identity's id
    assert (account.role, account.tenant_id) == ("therapist", tenant.id)
    assert (tenant.slug, tenant.status) == ("harbour-co", "provisioning")

    message = platform.last_mail_to(THERAPIST)
    assert message["Subject"] == "Confirm your e-mail address"
    link = link_in(message, "/verify-email/")
    # Opening the link only shows a button (mail scanners prefetch links).
    assert client.get(link).status_code == 200
    assert platform.rows(Identity)[0].email_verified_at is None
    response = confirm(client, link)
    assert response.headers["Location"] == "/dashboard"
    assert platform.rows(Identity)[0].email_verified_at is not None
    # The dashboard sends a new therapist to onboarding first; the practice waits for it.
    assert client.get("/dashboard").headers["Location"] == "/onboarding/started"
    complete_onboarding(client, "therapist")
    platform.settle()
    page = client.get("/therapist").get_data(as_text=True)
    assert "Harbour &amp; Co" in page and "Active" in page
    # Single use.
    assert client.get(link).status_code == 404


def test_argon2id_parameters_are_at_least_owasps(platform, monkeypatch):
    """The one test that hashes at production cost (the rest of the suite hashes cheaply)."""
    from core.identity import passwords

    monkeypatch.setattr(passwords, "HASHER", passwords.PRODUCTION_HASHER)
    signup_therapist(platform.client(), email=THERAPIST)
    [identity] = platform.rows(Identity)
    match = re.match(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", identity.password_hash)
    memory_kib, passes, lanes = map(int, match.groups())
    # OWASP: m=19 MiB, t=2, p=1 (or stronger trade-offs: 46 MiB/t=1, 12 MiB/t=3 …).
    assert memory_kib >= 19 * 1024 and passes >= 2 and lanes >= 1
    assert PASSWORD not in identity.password_hash


def test_signing_up_with_a_known_address_answers_the_same_and_tells_the_owner(platform):
    client = platform.client()
    _verified_therapist(platform, client)
    other = platform.client()
    first = signup_therapist(other, email="ADA@harbour.example", practice="Another Practice")
    unknown = signup_therapist(platform.client(), email="new@harbour.example",
                               practice="Third Practice")
    assert first.status_code == unknown.status_code == 200
    strip = lambda r: re.sub(r'(content|value|nonce)="[^"]+"', "", r.get_data(as_text=True))  # noqa: E731
    assert strip(first) == strip(unknown)
    assert platform.count(Identity, Identity.email == THERAPIST) == 1
    assert platform.count(Tenant, Tenant.name == "Another Practice") == 0
    notice = platform.last_mail_to(THERAPIST)
    assert notice["Subject"] == "Someone tried to sign up with your address"
    assert "/login" in notice.get_body(("plain",)).get_content()


def test_validation_errors_are_per_field_and_keep_what_was_typed(platform):
    response = signup_therapist(platform.client(), email="not-an-address", practice="",
                                password="password1")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Enter the practice&#39;s name." in html
    assert "Enter an e-mail address like name@example.com." in html
    assert "one of the most common" in html
    assert 'value="not-an-address"' in html
    assert platform.count(Identity) == 0


@pytest.mark.parametrize("password,message", [
    ("short", "at least 8 characters"),
    ("iloveyou2", "most common"),
    ("x" * 129, "at most 128"),
])
def test_password_rules(platform, password, message):
    response = signup_therapist(platform.client(), email="p@example.com", password=password)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_a_64_character_passphrase_with_spaces_and_unicode_is_fine(platform):
    passphrase = "ünïcode and spaces are welcome in a long passphrase — really 🙂 ok"
    assert len(passphrase) >= 64
    client = platform.client()
    assert signup_therapist(client, email=THERAPIST, password=passphrase).status_code == 200
    confirm(client, link_in(platform.last_mail_to(THERAPIST), "/verify-email/"))
    logout(client)
    assert login(client, THERAPIST, passphrase).status_code == 302


def test_login_lands_in_the_last_used_role_and_switching_rotates_the_session(platform):
    client = platform.client()
    _verified_therapist(platform, client)
    # A second practice exists; our therapist joins it as a client with the same login.
    other = platform.client()
    _verified_therapist(platform, other, email="grace@elm.example", practice="Elm Street")
    join = post_form(client, "/join/elm-street", {"display_name": "Ada as client"})
    assert join.status_code == 302
    accounts = platform.rows(Account, Account.identity_id == platform.rows(
        Identity, Identity.email == THERAPIST)[0].id)
    assert {a.role for a in accounts} == {"therapist", "client"}
    identity_id = accounts[0].identity_id
    client_account = next(a for a in accounts if a.role == "client")
    assert client_account.id != identity_id  # later accounts get their own ids
    # The new client role onboards first, then lands on its own dashboard.
    assert client.get("/dashboard").headers["Location"] == "/onboarding/started"
    complete_onboarding(client, "client")
    assert client.get("/dashboard").headers["Location"] == "/client"

    before = session_cookie(client)
    switched = post_form(client, "/switch-role", {"role": "therapist"}, page="/client")
    assert switched.status_code == 302
    after = session_cookie(client)
    assert after != before
    assert client.get("/dashboard").headers["Location"] == "/therapist"

    # The cookie from before the switch no longer works.
    replay = platform.client()
    replay.set_cookie("session", before)
    assert replay.get("/therapist").status_code == 302
    assert "/login" in replay.get("/therapist").headers["Location"]

    logout(client)
    login(client, THERAPIST)
    assert client.get("/dashboard").headers["Location"] == "/therapist"  # last used role


def test_session_id_changes_at_login_and_a_replayed_cookie_dies_at_logout(platform):
    client = platform.client()
    _verified_therapist(platform, client)
    logout(client)
    client.get("/login")
    anonymous_cookie = session_cookie(client)
    assert login(client, THERAPIST).status_code == 302
    logged_in_cookie = session_cookie(client)
    assert logged_in_cookie != anonymous_cookie
    assert client.get("/therapist").status_code == 200

    thief = platform.client()
    thief.set_cookie("session", logged_in_cookie)
    assert thief.get("/therapist").status_code == 200
    logout(client)
    assert thief.get("/therapist").status_code == 302
    logged_out = [r for r in platform.rows(AuthSession) if r.ended_reason == "logout"]
    assert len(logged_out) == 2 and all(r.revoked_at is not None for r in logged_out)


def test_unknown_address_and_wrong_password_look_the_same(platform):
    client = platform.client()
    _verified_therapist(platform, client)
    logout(client)
    wrong = login(platform.client(), THERAPIST, "not the password at all")
    unknown = login(platform.client(), "nobody@nowhere.example", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda r: re.sub(r'(content|value|nonce)="[^"]+"', "", r.get_data(as_text=True))  # noqa: E731
    assert strip(wrong) == strip(unknown)


def test_five_failures_lock_the_login_email_the_owner_and_an_admin_can_unlock(platform):
    client = platform.client()
    _verified_therapist(platform, client)
    logout(client)
    attacker = platform.client()
    for _ in range(5):
        assert login(attacker, THERAPIST, "guess-guess-guess").status_code == 401
    [identity] = platform.rows(Identity, Identity.email == THERAPIST)
    assert identity.locked_until > clock.now() + timedelta(minutes=14)
    # Locked: even the right password is refused, with the same answer.
    assert login(client, THERAPIST).status_code == 401
    notice = platform.last_mail_to(THERAPIST)
    assert notice["Subject"] == "Your login is locked for 15 minutes"
    platform.settle()
    types = [e.type for e in platform.rows(AuditEntry)]
    assert types.count("LOGIN_FAILED") == 6 and "ACCOUNT_LOCKED" in types

    runner = platform.app.test_cli_runner()
    result = runner.invoke(args=["users", "create-admin", "root@platform.example"],
                           input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    admin = platform.client()
    assert login(admin, "root@platform.example").status_code == 302
    page = admin.get("/admin").get_data(as_text=True)
    assert THERAPIST in page
    unlocked = post_form(admin, f"/admin/identities/{identity.id}/unlock", {}, page="/admin")
    assert unlocked.status_code == 302
    assert login(client, THERAPIST).status_code == 302


def test_therapist_invites_a_client_who_joins_from_the_link(platform):
    therapist = platform.client()
    _verified_therapist(platform, therapist)
    invited = post_form(therapist, "/therapist/invitations", {"email": "Client@Example.com"},
                        page="/therapist")
    assert invited.status_code == 302
    message = platform.last_mail_to("client@example.com")
    assert message["Subject"] == "Harbour Counselling invites you to Practice Platform"
    link = link_in(message, "/invite/")

    client = platform.client()
    page = client.get(link)
    assert "client@example.com" in page.get_data(as_text=True)
    accepted = post_form(client, link, {"display_name": "Charles", "password": PASSWORD},
                         page=link)
    assert accepted.status_code == 302
    assert client.get("/dashboard").headers["Location"] == "/onboarding/started"
    complete_onboarding(client, "client")
    assert client.get("/dashboard").headers["Location"] == "/client"
    assert "Harbour Counselling" in client.get("/client").get_data(as_text=True)
    [identity] = platform.rows(Identity, Identity.email == "client@example.com")
    assert identity.email_verified_at is not None  # the link proved the address
    [invitation] = platform.rows(Invitation)
    assert invitation.accepted_at is not None
    # Single use: followed again, the link says it was used and offers to log in.
    again = platform.client().get(link)
    assert again.status_code == 410
    assert "This invitation has been used" in again.get_data(as_text=True)
    assert "Charles" in therapist.get("/therapist").get_data(as_text=True)


def test_an_expired_invitation_is_refused(platform):
    therapist = platform.client()
    _verified_therapist(platform, therapist)
    post_form(therapist, "/therapist/invitations", {"email": "late@example.com"},
              page="/therapist")
    link = link_in(platform.last_mail_to("late@example.com"), "/invite/")
    later = clock.now
    try:
        clock.now = lambda: later() + timedelta(days=7, minutes=1)
        response = platform.client().get(link)
    finally:
        clock.now = later
    assert response.status_code == 410
    assert "This invitation has expired" in response.get_data(as_text=True)


def test_unverified_therapists_cannot_invite(platform):
    therapist = platform.client()
    signup_therapist(therapist, email=THERAPIST)
    [identity] = platform.rows(Identity)
    # Log in is refused until the address is confirmed; a new link is sent.
    refused = login(therapist, THERAPIST)
    assert refused.status_code == 403
    assert "confirm your e-mail address" in refused.get_data(as_text=True).lower()
    assert len(platform.mail_to(THERAPIST, count=2)) == 2
    assert identity.email_verified_at is None


def test_password_reset_answers_the_same_for_unknown_addresses_and_ends_other_sessions(platform):
    first = platform.client()
    _verified_therapist(platform, first)
    second = platform.client()
    login(second, THERAPIST)
    known = post_form(platform.client(), "/forgot-password", {"email": THERAPIST})
    unknown = post_form(platform.client(), "/forgot-password", {"email": "who@nowhere.example"})
    assert known.status_code == unknown.status_code == 200
    assert known.get_data(as_text=True).count("If an account uses that address") == 1
    link = link_in(platform.last_mail_to(THERAPIST), "/reset-password/")
    assert platform.smtp.to("who@nowhere.example") == []

    resetter = platform.client()
    new_password = "a brand new long passphrase"
    done = post_form(resetter, link, {"password": new_password}, page=link)
    assert done.status_code == 302
    assert first.get("/therapist").status_code == 302  # logged out everywhere
    assert second.get("/therapist").status_code == 302
    assert resetter.get("/therapist").status_code == 200
    changed = platform.last_mail_to(THERAPIST)
    assert changed["Subject"] == "Your password was changed"
    assert platform.client().get(link).status_code == 404  # single use
    assert login(platform.client(), THERAPIST, new_password).status_code == 302


def test_reset_links_expire_after_an_hour(platform):
    client = platform.client()
    _verified_therapist(platform, client)
    post_form(platform.client(), "/forgot-password", {"email": THERAPIST})
    link = link_in(platform.last_mail_to(THERAPIST), "/reset-password/")
    now = clock.now
    try:
        clock.now = lambda: now() + timedelta(minutes=61)
        assert platform.client().get(link).status_code == 404
    finally:
        clock.now = now


def test_sessions_page_revokes_one_or_all_others(platform):
    phone, laptop, tablet = platform.client(), platform.client(), platform.client()
    _verified_therapist(platform, phone)
    login(laptop, THERAPIST)
    login(tablet, THERAPIST)
    page = phone.get("/account/sessions").get_data(as_text=True)
    table = page[page.index("<table"):page.index("</table>")]
    assert table.count("Log out</button>") == 2 and table.count("This browser") == 1
    everywhere = post_form(phone, "/account/sessions/revoke-others", {}, page="/account/sessions")
    assert everywhere.status_code == 302
    assert laptop.get("/therapist").status_code == 302
    assert tablet.get("/therapist").status_code == 302
    assert phone.get("/therapist").status_code == 200


def test_changing_the_password_keeps_this_session_only(platform):
    mine, other = platform.client(), platform.client()
    _verified_therapist(platform, mine)
    login(other, THERAPIST)
    wrong = post_form(mine, "/account/password", {"current_password": "nope nope nope",
                                                   "new_password": "another long passphrase"})
    assert wrong.status_code == 422
    ok = post_form(mine, "/account/password", {"current_password": PASSWORD,
                                                "new_password": "another long passphrase"})
    assert ok.status_code == 302
    assert mine.get("/therapist").status_code == 200
    assert other.get("/therapist").status_code == 302


def test_idle_sessions_time_out(platform):
    client = platform.client()
    _verified_therapist(platform, client)
    now = clock.now
    try:
        clock.now = lambda: now() + timedelta(minutes=31)
        response = client.get("/therapist")
    finally:
        clock.now = now
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_access_control_redirects_forbids_and_audits(platform):
    anonymous = platform.client()
    response = anonymous.get("/therapist")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/therapist"
    client = platform.client()
    _verified_therapist(platform, client)
    post_form(client, "/therapist/invitations", {"email": "c@example.com"}, page="/therapist")
    invitee = platform.client()
    link = link_in(platform.last_mail_to("c@example.com"), "/invite/")
    post_form(invitee, link, {"display_name": "C", "password": PASSWORD}, page=link)
    assert invitee.get("/therapist").status_code == 403
    assert invitee.get("/admin").status_code == 403
    platform.settle()
    entries = platform.rows(AuditEntry)
    unauthorised = [e for e in entries if e.type == "UNAUTHORIZED_ACCESS_ATTEMPT"]
    denied = [e for e in entries if e.type == "ACCESS_DENIED"]
    assert unauthorised and unauthorised[0].details["path"] == "/therapist"
    assert {e.details["path"] for e in denied} == {"/therapist", "/admin"}
    assert all(e.ip == "127.0.0.1" for e in denied)


def test_dashboard_shows_my_own_security_activity(platform):
    client = platform.client()
    _verified_therapist(platform, client)
    logout(client)
    login(platform.client(), THERAPIST, "wrong wrong wrong")
    login(client, THERAPIST)
    platform.settle()
    page = client.get("/therapist").get_data(as_text=True)
    assert "Failed log-in attempt" in page and "Logged in" in page and "Logged out" in page


def test_open_redirects_are_refused(platform):
    client = platform.client()
    _verified_therapist(platform, client)
    logout(client)
    token_page = "/login?next=//evil.example/steal"
    response = post_form(client, "/login", {"email": THERAPIST, "password": PASSWORD,
                                            "next": "//evil.example/steal"}, page=token_page)
    assert response.headers["Location"] == "/dashboard"


def test_create_admin_can_email_a_set_password_link(platform):
    result = platform.app.test_cli_runner().invoke(
        args=["users", "create-admin", "Root@Platform.Example", "--send-link"])
    assert result.exit_code == 0, result.output
    assert "set-password link" in result.output
    link = link_in(platform.last_mail_to("root@platform.example"), "/set-password/")
    admin = platform.client()
    done = post_form(admin, link, {"password": "the admin's own passphrase"}, page=link)
    assert done.status_code == 302
    assert admin.get("/dashboard").headers["Location"] == "/admin"
    assert "Practices" in admin.get("/admin").get_data(as_text=True)
    again = platform.app.test_cli_runner().invoke(
        args=["users", "create-admin", "root@platform.example", "--send-link"])
    assert again.exit_code != 0 and "already an admin" in again.output


def test_a_client_starts_a_practice_of_their_own_from_the_sign_up_page(platform):
    """Found by make proof's form fuzz: this was a 500 (the practice was inserted after its
    therapist account)."""
    from tests.support.factories import practice

    harbour = practice(platform.db, "Harbour Counselling", slug_hint="harbour")
    client = platform.client()
    login(client, harbour.client_email)
    response = post_form(client, "/signup", {"practice_name": "0", "display_name": "0"},
                         page="/signup")
    assert response.status_code == 302
    assert client.get("/dashboard").headers["Location"] == "/onboarding/started"
