"""/admin/metrics and /admin/health in Chromium, under the real CSP: charts drawn, no console
error, no CSP violation, no axe-core violation; "Refresh now" works."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from core import clock
from core.health import CheckResult
from core.identity import signup
from core.metrics import rollup
from core.monitoring import history
from core.scoping import TenantContext
from core.uow import UnitOfWork
from tests.browser.axe import DESKTOP, PHONE, sideways_overflow, violations
from tests.browser.steps import flash, heading, log_in
from tests.support.activity import logs_in
from tests.support.factories import practice
from tests.support.flows import PASSWORD

pytestmark = pytest.mark.browser

ADMIN = "operator@platform.example"
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture
def rolled_up(platform, settings, monkeypatch):
    db = platform.db
    monkeypatch.setattr(clock, "now", lambda: datetime.now(UTC) - timedelta(minutes=5))
    harbour = practice(db, "Harbour", slug_hint="harbour")
    practice(db, "Elm", slug_hint="elm")
    logs_in(db, settings, harbour.client_email)
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        signup.create_admin(uow, ADMIN, PASSWORD)
        uow.commit()
    monkeypatch.undo()
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        rollup.run(uow)
    now = clock.now()
    for minutes, status in ((120, "pass"), (60, "fail"), (2, "pass")):
        with UnitOfWork(db, tenant=TenantContext.system()) as uow:
            history.record(uow, {"database": CheckResult("pass", 2.0, "postgresql"),
                                 "storage": CheckResult(status, 3.0, "folder")},
                           now=now - timedelta(minutes=minutes))
    return platform


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_operator_pages_render_cleanly(rolled_up, open_tab, viewport) -> None:
    tab = open_tab(viewport=viewport)
    tab.context.add_init_script(WATCH_CSP)
    log_in(tab, ADMIN)
    expect(heading(tab.page)).to_have_text("Platform")
    # The admin nav links here (on a phone it sits behind the Menu button).
    assert tab.page.locator('header a[href="/admin/metrics"]').count() == 1
    tab.goto("/admin/metrics")
    expect(heading(tab.page)).to_have_text("Metrics")
    page = tab.page
    charts = page.locator("svg[role=img]")
    assert charts.count() >= 5
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 50  # drawn, not empty
    assert page.locator("polyline").count() >= 4
    expect(page.get_by_test_id("active-tenants")).to_have_text("1")
    expect(page.get_by_test_id("figures-as-of")).to_contain_text("Figures as of")
    page.locator("details summary").first.click()  # the table behind the first chart
    expect(page.locator("details table").first).to_be_visible()
    assert violations(page) == []
    assert sideways_overflow(page) == 0

    page.get_by_label("Period", exact=True).select_option("7")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("img", name="Sign-ups per day, last 7 days")).to_be_visible()
    page.get_by_role("button", name="Refresh now").click()
    expect(flash(page, "A rollup is on its way")).to_be_visible()
    assert page.url.endswith("/admin/metrics?days=7")

    tab.goto("/admin/health")
    expect(heading(page)).to_have_text("Health")
    expect(page.get_by_role("img", name="Storage: 66.7 % up over the last 24 hours, failing in "
                                       "1 sample(s)")).to_be_visible()
    expect(page.get_by_test_id("uptime-database")).to_have_text("100.0 %")
    assert violations(page) == []
    assert sideways_overflow(page) == 0
    assert page.evaluate("() => window.__csp") == []
    assert tab.errors == []
