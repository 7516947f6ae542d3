"""A notification raised by a worker appears in the open browser without a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.steps import (
    expect_therapist_dashboard,
    flash,
    open_link_from_email,
    sign_up_verified_therapist,
)
from tests.support.flows import PASSWORD

pytestmark = pytest.mark.browser


def test_therapist_sees_a_new_client_arrive_live(platform, open_tab) -> None:
    ada = open_tab()
    sign_up_verified_therapist(ada, platform, practice="Harbour Counselling",
                               name="Dr Ada Lovelace", email="ada@harbour.example")
    invite = ada.page.locator("section").filter(
        has=ada.page.get_by_role("heading", name="Invite a client"))
    invite.get_by_label("E-mail address").fill("charles@example.com")
    invite.get_by_role("button", name="Send invitation").click()
    expect(flash(ada.page, "Invitation sent to charles@example.com.")).to_be_visible()
    expect_therapist_dashboard(ada, "Harbour Counselling")
    ada.page.wait_for_function("() => document.readyState === 'complete'")
    navigations = []
    ada.page.on("framenavigated", lambda frame: navigations.append(frame.url))

    charles = open_tab()
    open_link_from_email(charles, platform, "charles@example.com", "/invite/")
    charles.page.get_by_label("Your name").fill("Charles Babbage")
    charles.page.get_by_label("Choose a password").fill(PASSWORD)
    charles.page.get_by_role("button", name="Accept the invitation").click()
    expect(flash(charles.page, "Welcome to Harbour Counselling.")).to_be_visible()
    platform.settle()  # the worker raises the notification

    toast = ada.page.locator("#live-region .toast").filter(has_text="New client")
    expect(toast, "the notification shows up on the open dashboard").to_contain_text(
        "New client: Charles Babbage", timeout=15_000)
    assert navigations == [], "the page must not have reloaded"
    expect(toast.get_by_role("link", name="Open")).to_have_attribute(
        "href", f"/therapist/clients/{_client_id(platform)}")
    assert ada.errors == [] and charles.errors == []


def _client_id(platform) -> str:
    from core.identity.models import Account

    [client] = platform.rows(Account, Account.role == "client")
    return str(client.id)
