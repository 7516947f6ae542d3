"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright; never downloads one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium():
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("CI must install Debian's chromium (.ci/run does)")
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                         args=LAUNCH_ARGS)
    yield browser
    browser.close()
    playwright.stop()


class Tab:
    """A page in a fresh browser context, with every console error and page error recorded."""

    def __init__(self, browser, base_url: str, **context_options) -> None:
        self.context = browser.new_context(**context_options)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.base_url = base_url
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def goto(self, path: str):
        return self.page.goto(self.base_url + path)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_tab(chromium, live_server):
    tabs: list[Tab] = []

    def open_(**context_options) -> Tab:
        tab = Tab(chromium, live_server.url, **context_options)
        tabs.append(tab)
        return tab

    yield open_
    for tab in tabs:
        tab.close()
