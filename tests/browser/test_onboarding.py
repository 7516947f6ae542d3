"""Onboarding in Chromium: auto-save, resume on another browser, completion's effects shown
live, two tabs in conflict, and the whole wizard with JavaScript switched off."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from core.onboarding.models import OnboardingProgress
from core.tenancy.models import Tenant
from tests.browser.steps import (
    confirm_address,
    flash,
    heading,
    log_in,
    signup,
)

pytestmark = pytest.mark.browser

ADA = "ada@harbour.example"
HARBOUR = "Harbour Counselling"


def _start(tab, platform) -> None:
    signup(tab, practice=HARBOUR, name="Dr Ada Lovelace", email=ADA)
    confirm_address(tab, platform, ADA)
    expect(tab.page).to_have_url(re.compile(r"/onboarding/started$"))
    tab.page.get_by_role("button", name="Let's begin").click()
    expect(heading(tab.page)).to_have_text("About you")


def _status(tab):
    return tab.page.locator("#save-status")


def _unexpected(tab, *expected_statuses: int) -> list[str]:
    """Console errors other than Chromium's note about an HTTP status the test asked for."""
    expected = tuple(f"status of {status} " for status in expected_statuses)
    return [e for e in tab.errors
            if not (e.startswith("Failed to load resource") and any(s in e for s in expected))]


def test_autosave_resume_elsewhere_finish_and_see_the_practice_ready(platform, open_tab):
    first = open_tab()
    _start(first, platform)
    page = first.page
    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("Phone number").fill("+44 20 7946 0958")
    page.get_by_label("Time zone").select_option("Europe/London")
    expect(_status(first), "auto-save runs 2 s after the last keystroke").to_have_text(
        "Saved", timeout=10_000)
    [progress] = platform.rows(OnboardingProgress)
    assert progress.data["PERSONAL_INFO"]["full_name"] == "Ada Lovelace"
    assert first.errors == []
    first.close()  # the browser goes away without pressing anything

    second = open_tab()
    log_in(second, ADA)
    page = second.page
    expect(page, "the gate resumes at the saved stage").to_have_url(
        re.compile(r"/onboarding/personal-info$"))
    expect(page.get_by_label("Full name")).to_have_value("Ada Lovelace")
    expect(page.get_by_label("Phone number")).to_have_value("+44 20 7946 0958")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/London")
    page.get_by_label("Preferred language").select_option("en")
    page.get_by_role("button", name="Continue", exact=True).click()
    expect(heading(page)).to_have_text("Your practice")
    page.get_by_label("Licence number").fill("HCPC-PYL12345")
    page.get_by_label("Licensing body or jurisdiction").fill("HCPC (UK)")
    page.get_by_label("Anxiety").check()
    page.get_by_label("Years in practice").fill("7")
    page.get_by_label("Practice name shown to clients").fill(HARBOUR)
    page.get_by_role("button", name="Continue", exact=True).click()
    expect(heading(page)).to_have_text("Terms")
    page.get_by_label("I accept the terms of service").check()
    page.get_by_label("I accept the privacy notice").check()
    page.get_by_role("button", name="Finish").click()
    expect(flash(page, "You're all set. Welcome!")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/therapist$"))
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    platform.settle()  # welcome e-mail, practice initialisation, "ready" notification
    welcome = platform.last_mail_to(ADA)
    assert welcome["Subject"] == "Welcome to Practice Platform, Dr Ada Lovelace"
    [tenant] = platform.rows(Tenant)
    assert tenant.status == "active"
    toast = page.locator("#live-region .toast").filter(has_text="Your practice is ready")
    expect(toast, "the practice-ready notification appears live").to_contain_text(
        "Your practice is ready", timeout=15_000)
    expect(page.get_by_test_id("practice-status"), "and the badge on the same page agrees") \
        .to_have_text("Active")
    assert navigations == [], "it appeared without a reload"
    assert second.errors == []


def test_two_tabs_on_one_account_conflict_without_losing_anything(platform, open_tab):
    tab_a = open_tab()
    _start(tab_a, platform)
    tab_b = open_tab()
    log_in(tab_b, ADA)
    expect(tab_b.page).to_have_url(re.compile(r"/onboarding/personal-info$"))

    tab_a.page.get_by_label("Full name").fill("Typed in tab A")
    expect(_status(tab_a)).to_have_text("Saved", timeout=10_000)

    tab_b.page.get_by_label("Full name").fill("Typed in tab B")
    conflict = tab_b.page.locator("#conflict-live")
    expect(conflict, "the second save is refused and says so").to_contain_text(
        "changed in another window or on another device", timeout=10_000)
    expect(conflict).to_contain_text("Nothing has been overwritten")
    expect(tab_b.page.get_by_label("Full name"), "tab B keeps what was typed there") \
        .to_have_value("Typed in tab B")
    [progress] = platform.rows(OnboardingProgress)
    assert progress.data["PERSONAL_INFO"]["full_name"] == "Typed in tab A"

    # Tab B decides to keep its own answers: that is an explicit choice, and then it saves.
    conflict.get_by_role("button", name="Keep my answers").click()
    expect(_status(tab_b)).to_have_text("Saved", timeout=10_000)
    [progress] = platform.rows(OnboardingProgress)
    assert progress.data["PERSONAL_INFO"]["full_name"] == "Typed in tab B"
    assert tab_a.errors == [] and _unexpected(tab_b, 409) == []


def test_the_whole_wizard_works_without_javascript(platform, open_tab):
    tab = open_tab(java_script_enabled=False)
    _start(tab, platform)
    page = tab.page
    # What sign-up asked is filled in already.
    expect(page.get_by_label("Full name")).to_have_value("Dr Ada Lovelace")
    # No script: "Continue" with the rest empty shows the server's own messages.
    page.get_by_role("button", name="Continue", exact=True).click()
    expect(page.get_by_text("Enter a phone number.")).to_be_visible()
    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("Phone number").fill("+44 20 7946 0958")
    page.get_by_label("Time zone").select_option("Europe/London")
    page.get_by_label("Preferred language").select_option("en")
    page.get_by_role("button", name="Continue", exact=True).click()
    expect(heading(page)).to_have_text("Your practice")
    page.get_by_label("Licence number").fill("HCPC-PYL12345")
    page.get_by_label("Licensing body or jurisdiction").fill("HCPC (UK)")
    page.get_by_label("Trauma and PTSD").check()
    page.get_by_label("Years in practice").fill("12")
    page.get_by_label("Practice name shown to clients").fill(HARBOUR)
    # Save & Continue Later works too, and the dashboard offers to resume.
    page.get_by_role("button", name="Save & Continue Later").click()
    expect(flash(page, "Your answers are saved.")).to_be_visible()
    page.get_by_role("link", name="Pick up where you left off").click()
    expect(heading(page)).to_have_text("Your practice")
    expect(page.get_by_label("Years in practice")).to_have_value("12")
    page.get_by_role("button", name="Continue", exact=True).click()
    page.get_by_label("I accept the terms of service").check()
    page.get_by_label("I accept the privacy notice").check()
    page.get_by_role("button", name="Finish").click()
    expect(flash(page, "You're all set. Welcome!")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/therapist$"))
    [progress] = platform.rows(OnboardingProgress)
    assert progress.completed_at is not None
    assert _unexpected(tab, 422) == []  # the form re-shown with its errors is a 422
