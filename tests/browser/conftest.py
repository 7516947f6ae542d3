"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright; never downloads one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import IN_CI, free_port
from tests.support.apps import make_app
from tests.support.platform import Platform
from tests.support.workers import EmbeddedWorker

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


# -- the whole platform, served over HTTP --------------------------------------------------------

@dataclass
class LivePlatform(Platform):
    url: str = ""


@contextmanager
def serving(settings, db, smtp) -> Iterator[LivePlatform]:
    """The app (an in-process worker) served over HTTP on a free loopback port."""
    from werkzeug.serving import make_server

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_app(settings.with_overrides(public_url=url), db)
    server = make_server("127.0.0.1", port, app, threaded=True)
    worker = EmbeddedWorker(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    running = LivePlatform(app=app, smtp=smtp, worker=worker, db=db, url=url)
    try:
        yield running
    finally:
        server.shutdown()
        thread.join(timeout=5)
        worker.stop()


@pytest.fixture
def platform(settings, db, smtp_server) -> Iterator[LivePlatform]:
    """The app (real SMTP, in-process worker) served over HTTP on a free loopback port."""
    with serving(settings.with_overrides(smtp_url=smtp_server.url), db, smtp_server) as live:
        yield live


@pytest.fixture
def dev_platform(settings, db, tmp_path) -> Iterator[LivePlatform]:
    """As `make run` on a bare machine: development mode, e-mails written as files (and so
    readable at /dev/mail), in this test's own instance folder."""
    configured = settings.with_overrides(app_env="development", smtp_url=None,
                                         instance_path=tmp_path)
    with serving(configured, db, None) as live:
        yield live


def tab_opener(chromium, base_url: str):
    tabs: list[Tab] = []

    def open_(**context_options) -> Tab:
        tab = Tab(chromium, base_url, **context_options)
        # Where each console error happened, for the failure message.
        tab.error_pages = []
        tab.page.on("console", lambda m: m.type == "error" and tab.error_pages.append(
            urlsplit(tab.page.url).path))
        tabs.append(tab)
        return tab

    return open_, tabs


@pytest.fixture
def open_dev_tab(chromium, dev_platform) -> Iterator:
    open_, tabs = tab_opener(chromium, dev_platform.url)
    yield open_
    for tab in tabs:
        tab.close()


@pytest.fixture
def open_tab(chromium, platform) -> Iterator:
    """open_tab() -> a Tab in a fresh browser context (its own cookies) on the live platform."""
    open_, tabs = tab_opener(chromium, platform.url)
    yield open_
    for tab in tabs:
        tab.close()


