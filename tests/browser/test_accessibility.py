"""Every page, as each kind of visitor sees it, at desktop width and at 390 px (a phone): axe-core
finds no violation of any impact, no page scrolls sideways, each has a title and a description.

A new violation anywhere fails the build; the report names the page, the width, the rule and
the elements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from assembly import worker_side_of
from core import clock
from core.identity import invitations, signup, tokens
from core.identity.directory import account_for, identity_by_email
from core.identity.models import Identity, Invitation, Role, TokenPurpose
from core.notifications.service import notify
from core.onboarding import service as onboarding
from core.onboarding.stages import Stage
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from tests.browser.axe import DESKTOP, PHONE, sideways_overflow, violations
from tests.browser.steps import heading, log_in
from tests.support.factories import practice
from tests.support.flows import PASSWORD, PERSONAL_INFO, PROFESSIONAL_INFO
from tests.support.tokens import issue_token

pytestmark = pytest.mark.browser

ADMIN = "root@platform.example"
NEWCOMER = "new@elm.example"


@dataclass
class World:
    slug: str
    client_id: str
    tenant_id: str
    pending_link: str
    used_link: str
    expired_link: str
    verify_link: str
    confirm_email_link: str


def _invitation_link(db, invitation_id, *, expired: bool = False) -> str:
    raw = tokens.new_secret()
    with system_session(db) as session:
        invitation = session.get(Invitation, invitation_id)
        invitation.token_hash = tokens.digest(raw)
        if expired:
            invitation.expires_at = clock.now() - timedelta(hours=1)
        session.commit()
    return f"/invite/{raw}"


def _build(platform) -> World:
    db = platform.db
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    fast_path = worker_side_of(platform.app).fast_path
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id), fast_path=fast_path) as uow:
        late = invitations.invite_client(uow, harbour.therapist, "late@harbour.example")
        joined = invitations.invite_client(uow, harbour.therapist, "joined@harbour.example")
        uow.commit()
        late_id, joined_id = late.id, joined.id
    platform.settle()  # their e-mails are written (for /dev/mail); the links are made below
    pending_link = _invitation_link(db, harbour.invitation.id)
    expired_link = _invitation_link(db, late_id, expired=True)
    used_link = _invitation_link(db, joined_id)
    with UnitOfWork(db) as uow:
        invitations.accept_invitation(uow, used_link.removeprefix("/invite/"),
                                      display_name="Joined Client", password=PASSWORD)
        signup.create_admin(uow, ADMIN, PASSWORD)
        signup.signup_therapist(uow, practice_name="Elm Street", display_name="Grace Newcomer",
                                email=NEWCOMER, password=PASSWORD)
        signup.signup_therapist(uow, practice_name="Unconfirmed", display_name="Una",
                                email="una@unconfirmed.example", password=PASSWORD)
        uow.commit()
    with system_session(db) as session:
        newcomer = identity_by_email(session, NEWCOMER)
        newcomer.email_verified_at = clock.now()
        newcomer_account = account_for(session, newcomer.id, Role.THERAPIST)
        verify_raw = issue_token(session, identity_by_email(
            session, "una@unconfirmed.example").id, TokenPurpose.VERIFY_EMAIL)
        therapist_identity = session.get(Identity, harbour.therapist.identity_id)
        change_raw = issue_token(session, therapist_identity.id, TokenPurpose.CHANGE_EMAIL,
                                 new_email="ada@elsewhere.example")
        session.commit()
    # The newcomer has reached the last step of set-up: every earlier one can be shown.
    with UnitOfWork(db, tenant=TenantContext.of(newcomer_account.tenant_id)) as uow:
        answers = {Stage.PERSONAL_INFO: PERSONAL_INFO, Stage.PROFESSIONAL_INFO: PROFESSIONAL_INFO}
        for target in (Stage.PERSONAL_INFO, Stage.PROFESSIONAL_INFO, Stage.TERMS):
            current = Stage(onboarding.of_account(uow.session, newcomer_account.id).stage)
            onboarding.move(uow, newcomer_account.id, target, values=answers.get(current))
        uow.commit()
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow:
        notify(uow, platform.app.extensions["services"].notifications,
               account_id=harbour.therapist.id, tenant_id=harbour.tenant.id, kind="test",
               title="New client: Joined Client", body="They joined your practice.",
               link=f"/therapist/clients/{harbour.client.id}")
        notify(uow, platform.app.extensions["services"].notifications,
               account_id=harbour.therapist.id, tenant_id=harbour.tenant.id, kind="test",
               title="Your practice is ready", body="Invite your first client.",
               link="/therapist")
        uow.commit()
    return World(slug=harbour.tenant.slug, client_id=str(harbour.client.id),
                 tenant_id=str(harbour.tenant.id), pending_link=pending_link,
                 used_link=used_link, expired_link=expired_link,
                 verify_link=f"/verify-email/{verify_raw}",
                 confirm_email_link=f"/settings/email/confirm/{change_raw}")


def _pages(world: World, letter: str) -> dict[str, list[str]]:
    return {
        "anonymous": ["/", "/login", "/signup", "/forgot-password", "/terms", "/privacy",
                      f"/join/{world.slug}", world.pending_link, world.used_link,
                      world.expired_link, "/invite/no-such-link", world.verify_link,
                      world.confirm_email_link, "/no/such/page", "/dev/mail", letter],
        "therapist@harbour.example": [
            "/therapist", "/therapist/clients", "/therapist/clients?q=zzz",
            f"/therapist/clients/{world.client_id}",
            f"/therapist/clients/{world.client_id}/remove", "/inbox", "/settings",
            "/account/sessions", "/account/password", "/join/no-such-practice",
            "/therapist/privacy"],
        "client@harbour.example": ["/client", "/inbox", "/settings", "/account/sessions"],
        ADMIN: ["/admin", f"/admin/practices/{world.tenant_id}", "/admin/metrics",
                "/admin/metrics?days=90", "/admin/health", "/inbox", "/settings",
                "/admin/privacy"],
        NEWCOMER: ["/onboarding/started", "/onboarding/personal-info",
                   "/onboarding/professional-info", "/onboarding/terms", "/therapist"],
    }


def _check(tab, path: str, width: str, problems: list[str]) -> None:
    page = tab.page
    where = f"{path} at {width}"
    problems += [f"{where}: {v}" for v in violations(page)]
    if not page.title().strip():
        problems.append(f"{where}: no title")
    description = page.locator('meta[name="description"]')
    if description.count() != 1 or not (description.get_attribute("content") or "").strip():
        problems.append(f"{where}: no meta description")
    overflow = sideways_overflow(page)
    if overflow > 0:
        problems.append(f"{where}: the page scrolls {overflow}px sideways")


def _visit(tab, path: str, width: str, problems: list[str]) -> None:
    response = tab.goto(path)
    if response is None or response.status >= 500:
        problems.append(f"{path} at {width}: answered {response and response.status}")
        return
    _check(tab, path, width, problems)


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_every_page_for_every_role_has_no_accessibility_violations(width, dev_platform,
                                                                   open_dev_tab):
    world = _build(dev_platform)
    viewport = DESKTOP if width == "desktop" else PHONE
    problems: list[str] = []
    probe = open_dev_tab(viewport=viewport)
    probe.goto("/dev/mail")
    letter = probe.page.get_by_role("link").filter(has_text="invites you").first \
        .get_attribute("href")
    for who, paths in _pages(world, letter).items():
        tab = open_dev_tab(viewport=viewport)
        if who != "anonymous":
            log_in(tab, who)
            expect(heading(tab.page)).not_to_have_text("Log in")
        for path in paths:
            _visit(tab, path, width, problems)
        if who == "anonymous":
            # A form sent empty shows its errors: they must be readable too.
            tab.goto("/login")
            tab.page.get_by_role("button", name="Log in").click()
            expect(tab.page.locator(".field .error").first).to_be_visible()
            _check(tab, "/login (with errors)", width, problems)
        if width == "phone":
            # The folded menu, opened.
            tab.goto("/")
            tab.page.get_by_role("button", name="Menu").click()
            expect(tab.page.get_by_role("navigation", name="Main")).to_be_visible()
            _check(tab, "/ (menu open)", width, problems)
    assert problems == [], "\n".join(problems)
