"""The identity story end to end, in Chromium, against a live server that sends real e-mail.

A therapist signs up, confirms her address from the e-mail, logs out and in, invites a client
who signs up from the invitation, joins a second practice as a client with the same login,
switches roles, and finally logs out every other browser from her sessions page.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.steps import (
    confirm_address,
    console_report,
    expect_client_dashboard,
    expect_therapist_dashboard,
    flash,
    heading,
    invitation_row,
    log_in,
    log_out,
    onboard,
    open_link_from_email,
    role_switcher,
    sign_up_verified_therapist,
    signup,
)
from tests.support.flows import PASSWORD

pytestmark = pytest.mark.browser

ADA = "ada@harbour.example"
ADA_NAME = "Dr Ada Lovelace"
HARBOUR = "Harbour Counselling"
CLIENT = "client@example.com"
CLIENT_NAME = "Charles Babbage"
GRACE = "grace@elm.example"
ELM = "Elm Street"


def test_therapist_and_client_identity_story(platform, open_tab) -> None:
    # 1. Ada starts her practice.
    ada = open_tab()
    signup(ada, practice=HARBOUR, name=ADA_NAME, email=ADA)
    message = platform.last_mail_to(ADA)
    assert message["Subject"] == "Confirm your e-mail address"

    # 2. She confirms her address from the e-mail and lands on her dashboard.
    confirm_address(ada, platform, ADA)
    onboard(ada, platform, "therapist", practice=HARBOUR)
    ada.page.reload()  # the practice became active meanwhile
    expect_therapist_dashboard(ada, HARBOUR)
    banner = ada.page.get_by_role("banner")
    expect(banner.locator(".badge"), "one role: a badge, not a switcher").to_have_text("Therapist")
    expect(role_switcher(ada.page)).to_have_count(0)

    # 3. Log out from the header.
    log_out(ada)
    expect(ada.page).to_have_url(re.compile(r"/login$"))
    expect(heading(ada.page)).to_have_text("Log in")
    expect(flash(ada.page, "You are logged out.")).to_be_visible()

    # 4. Log in again.
    log_in(ada, ADA)
    expect_therapist_dashboard(ada, HARBOUR)

    # 5. Invite a client.
    invite = ada.page.locator("section").filter(
        has=ada.page.get_by_role("heading", name="Invite a client"))
    invite.get_by_label("E-mail address").fill(CLIENT)
    invite.get_by_role("button", name="Send invitation").click()
    expect(flash(ada.page, f"Invitation sent to {CLIENT}.")).to_be_visible()
    expect(invitation_row(ada.page, CLIENT)).to_contain_text("Pending")
    invitation = platform.last_mail_to(CLIENT)
    assert invitation["Subject"] == f"{HARBOUR} invites you to Practice Platform"

    # 6. The client, in another browser, signs up from the invitation.
    charles = open_tab()
    open_link_from_email(charles, platform, CLIENT, "/invite/")
    expect(heading(charles.page)).to_have_text(f"{HARBOUR} invites you")
    expect(charles.page.get_by_text(CLIENT)).to_be_visible()
    charles.page.get_by_label("Your name").fill(CLIENT_NAME)
    charles.page.get_by_label("Choose a password").fill(PASSWORD)
    charles.page.get_by_role("button", name="Accept the invitation").click()
    expect(flash(charles.page, f"Welcome to {HARBOUR}.")).to_be_visible()
    onboard(charles, platform, "client")
    expect_client_dashboard(charles, CLIENT_NAME, HARBOUR)
    expect(charles.page.get_by_role("banner").locator(".badge")).to_have_text("Client")

    ada.page.reload()
    clients = ada.page.locator("section").filter(
        has=ada.page.get_by_role("heading", name="Clients", exact=True))
    expect(clients.get_by_role("link", name=CLIENT_NAME),
           "the new client is listed on the therapist's dashboard").to_be_visible()
    expect(invitation_row(ada.page, CLIENT)).to_contain_text("Accepted")

    # 7. Another therapist starts a second practice, in a third browser.
    grace = open_tab()
    sign_up_verified_therapist(grace, platform, practice=ELM, name="Grace Hopper", email=GRACE)

    # 8. Ada joins Elm Street as a client with the same login, then switches back.
    ada.goto("/join/elm-street")
    expect(heading(ada.page)).to_have_text(f"Join {ELM} as a client")
    expect(ada.page.get_by_text(f"You are logged in as {ADA}.")).to_be_visible()
    expect(ada.page.get_by_label("Your name as the practice will see it")).to_have_value(ADA_NAME)
    ada.page.get_by_role("button", name="Join as a client").click()
    expect(flash(ada.page, f"You have joined {ELM} as a client.")).to_be_visible()
    onboard(ada, platform, "client")
    expect_client_dashboard(ada, ADA_NAME, ELM)

    switcher = role_switcher(ada.page)
    expect(switcher, "two roles: the header offers a role switcher").to_be_visible()
    expect(switcher).to_have_value("client")
    options = switcher.locator("option")
    expect(options).to_have_count(2)
    assert sorted(t.strip() for t in options.all_inner_texts()) == \
        [f"Client · {ELM}", f"Therapist · {HARBOUR}"], "the switcher lists both roles"
    switcher.select_option("therapist")
    ada.page.get_by_role("banner").get_by_role("button", name="Switch").click()
    expect(flash(ada.page, "You are now working as therapist.")).to_be_visible()
    expect_therapist_dashboard(ada, HARBOUR)
    expect(role_switcher(ada.page)).to_have_value("therapist")

    # 9. Ada logs in on a second device, then logs out everywhere else from the first.
    laptop = open_tab()
    log_in(laptop, ADA)
    expect_therapist_dashboard(laptop, HARBOUR)  # the role she used last

    ada.goto("/account/sessions")
    expect(heading(ada.page)).to_have_text("Your sessions")
    sessions = ada.page.locator("table tbody tr")
    expect(sessions, "this browser and the second device").to_have_count(2)
    expect(sessions.filter(has_text="This browser")).to_have_count(1)
    ada.page.get_by_role("button", name="Log out everywhere else").click()
    expect(flash(ada.page, "Logged out everywhere else (1 session).")).to_be_visible()
    expect(sessions, "only this browser is left").to_have_count(1)
    expect(sessions.filter(has_text="This browser")).to_have_count(1)

    laptop.page.reload()
    expect(laptop.page, "the second device's session has ended") \
        .to_have_url(laptop.base_url + "/login?next=/therapist")
    expect(heading(laptop.page)).to_have_text("Log in")

    ada.goto("/therapist")
    expect_therapist_dashboard(ada, HARBOUR)  # this browser is still logged in

    # No console errors anywhere (a CSP violation, a failed script, a 404ed asset ...).
    tabs = {"ada": ada, "charles": charles, "grace": grace, "laptop": laptop}
    assert all(tab.errors == [] for tab in tabs.values()), console_report(tabs)
