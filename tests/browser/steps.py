"""What a person does in the browser, as small steps the stories are written in."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import LivePlatform, Tab
from tests.support.flows import PASSWORD, link_in


def heading(page: Page):
    return page.get_by_role("heading", level=1)


def flash(page: Page, text: str):
    return page.locator(".flashes").get_by_role("status").filter(has_text=text)


def open_link_from_email(tab: Tab, platform: LivePlatform, address: str, prefix: str) -> str:
    """Wait for the e-mail to `address` (drains the worker) and open its `prefix` link."""
    path = link_in(platform.last_mail_to(address), prefix)
    response = tab.goto(path)
    assert response is not None and response.status == 200, \
        f"{path} from the e-mail to {address} answered {response and response.status}"
    return path


def signup(tab: Tab, *, practice: str, name: str, email: str,
           password: str = PASSWORD) -> None:
    tab.goto("/signup")
    page = tab.page
    expect(heading(page)).to_have_text("Start your practice")
    page.get_by_label("Practice name").fill(practice)
    page.get_by_label("Your name").fill(name)
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create my practice").click()
    expect(heading(page), "sign-up should end on the check-your-e-mail page") \
        .to_have_text("Check your e-mail")


def confirm_address(tab: Tab, platform: LivePlatform, email: str) -> None:
    """Open the confirmation link from the e-mail and press its button."""
    open_link_from_email(tab, platform, email, "/verify-email/")
    page = tab.page
    expect(heading(page)).to_have_text("Confirm your e-mail address")
    page.get_by_role("button", name="Confirm my address").click()
    expect(flash(page, "Thank you, your e-mail address is confirmed.")).to_be_visible()


def onboard(tab: Tab, platform: LivePlatform, role: str, *, practice: str = "") -> None:
    """Walk the set-up wizard from its first page, as a person fills it in."""
    page = tab.page
    expect(page).to_have_url(re.compile(r"/onboarding/started$"))
    page.get_by_role("button", name="Let's begin").click()
    expect(heading(page)).to_have_text("About you")
    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("Phone number").fill("+44 20 7946 0958")
    page.get_by_label("Time zone").select_option("Europe/London")
    page.get_by_label("Preferred language").select_option("en")
    page.get_by_role("button", name="Continue", exact=True).click()
    if role == "therapist":
        expect(heading(page)).to_have_text("Your practice")
        page.get_by_label("Licence number").fill("HCPC-PYL12345")
        page.get_by_label("Licensing body or jurisdiction").fill("HCPC (UK)")
        page.get_by_label("Anxiety").check()
        page.get_by_label("Trauma and PTSD").check()
        page.get_by_label("Years in practice").fill("7")
        page.get_by_label("Practice name shown to clients").fill(practice)
        page.get_by_role("button", name="Continue", exact=True).click()
    expect(heading(page)).to_have_text("Terms")
    page.get_by_label("I accept the terms of service").check()
    page.get_by_label("I accept the privacy notice").check()
    page.get_by_role("button", name="Finish").click()
    expect(flash(page, "You're all set. Welcome!")).to_be_visible()
    platform.settle()  # welcome e-mail, and for a therapist the practice's initialisation


def sign_up_verified_therapist(tab: Tab, platform: LivePlatform, *, practice: str, name: str,
                               email: str) -> None:
    signup(tab, practice=practice, name=name, email=email)
    confirm_address(tab, platform, email)
    onboard(tab, platform, "therapist", practice=practice)
    tab.page.reload()
    expect_therapist_dashboard(tab, practice)


def log_in(tab: Tab, email: str, password: str = PASSWORD) -> None:
    page = tab.page
    if "/login" not in page.url:
        tab.goto("/login")
    expect(heading(page)).to_have_text("Log in")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def log_out(tab: Tab) -> None:
    tab.page.get_by_role("banner").get_by_role("button", name="Log out").click()


def expect_therapist_dashboard(tab: Tab, practice: str) -> None:
    page = tab.page
    expect(page, "the therapist's home is /therapist").to_have_url(tab.base_url + "/therapist")
    expect(heading(page), "the therapist dashboard is titled with the practice") \
        .to_have_text(practice)
    expect(page.get_by_role("heading", name="Invite a client")).to_be_visible()


def expect_client_dashboard(tab: Tab, name: str, practice: str) -> None:
    page = tab.page
    expect(page, "the client's home is /client").to_have_url(tab.base_url + "/client")
    expect(heading(page)).to_have_text(f"Hello, {name}")
    expect(page.locator(".page-title .badge")).to_have_text(f"Client of {practice}")


def invitation_row(page: Page, email: str):
    return page.get_by_role("row").filter(has_text=email)


def role_switcher(page: Page):
    return page.get_by_role("banner").get_by_label("Working as")


def console_report(tabs: dict[str, Tab]) -> str:
    lines = ["console errors:"]
    for name, tab in tabs.items():
        if tab.errors:
            kinds = sorted({re.sub(r"nonce-[^']+", "nonce-…", error) for error in tab.errors})
            lines.append(f"  {name}: {len(tab.errors)} on {sorted(set(tab.error_pages))}: {kinds}")
    return "\n".join(lines)


