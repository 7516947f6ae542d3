"""The first page a new user sees, in a real browser."""

from __future__ import annotations

import json

import pytest

from core.monitoring.checks import beat_scheduler

pytestmark = pytest.mark.browser


def test_home_page_renders_without_console_errors(open_tab, platform) -> None:
    tab = open_tab()
    response = tab.goto("/")
    assert response.status == 200
    assert tab.page.title() == "Welcome · Practice Platform"
    heading = tab.page.locator("h1")
    assert heading.inner_text().startswith("Run your practice.")
    # Our stylesheet applied (CSP allowed it): the header has its white background.
    background = tab.page.eval_on_selector(".site-header",
                                           "e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(255, 255, 255)"
    assert tab.errors == []

    # Healthy needs every part: the scheduler's leader too (its heartbeat, as `make run`'s
    # embedded scheduler writes it; this platform runs no scheduler of its own).
    beat_scheduler(platform.app.extensions["services"].cache, "embedded", 15)
    health = tab.goto("/api/health")
    assert json.loads(tab.page.inner_text("body"))["status"] == "healthy"
    assert health.status == 200


def test_inline_script_without_nonce_is_blocked(open_tab) -> None:
    tab = open_tab()
    tab.goto("/")
    blocked = tab.page.evaluate("""() => new Promise(resolve => {
        document.addEventListener('securitypolicyviolation', e => resolve(e.violatedDirective));
        const s = document.createElement('script');
        s.textContent = 'window.__injected = true';
        document.body.appendChild(s);
        setTimeout(() => resolve(null), 1000);
    })""")
    assert blocked and blocked.startswith("script-src")
    assert tab.page.evaluate("() => window.__injected === undefined")
