"""What a newcomer does after `make run` on a bare machine: sign up, then read the confirmation
e-mail at /dev/mail and follow its link, all in the browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.steps import flash, heading, signup

pytestmark = pytest.mark.browser


def test_a_newcomer_reaches_the_confirmation_link_from_dev_mail(dev_platform, open_dev_tab):
    tab = open_dev_tab()
    signup(tab, practice="Harbour Counselling", name="Dr Ada Lovelace",
           email="ada@harbour.example")
    dev_platform.settle()  # the worker writes the e-mail

    tab.goto("/dev/mail")
    page = tab.page
    expect(heading(page)).to_have_text("Sent e-mail")
    row = page.get_by_test_id("mailbox").get_by_role("row").filter(has_text="ada@harbour.example")
    expect(row).to_contain_text("Confirm your e-mail address")
    row.get_by_role("link", name="Confirm your e-mail address").click()

    expect(heading(page)).to_have_text("Confirm your e-mail address")
    body = page.get_by_test_id("letter-body")
    expect(body).to_contain_text("Please confirm your e-mail address")
    body.get_by_role("link", name=re.compile("verify-email")).click()

    expect(heading(page)).to_have_text("Confirm your e-mail address")
    page.get_by_role("button", name="Confirm my address").click()
    expect(flash(page, "Thank you, your e-mail address is confirmed.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/onboarding/started$"))

    # The HTML version is there too, under a policy that lets its inline styles apply only.
    tab.goto("/dev/mail")
    page.get_by_role("link", name="Confirm your e-mail address").first.click()
    with tab.page.expect_response(re.compile(r"/html$")) as html:
        page.get_by_role("link", name="The HTML version").click()
    csp = html.value.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp
    expect(page.get_by_role("link", name="Confirm my address")).to_be_visible()
    assert tab.errors == []
