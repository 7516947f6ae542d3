"""The web process as its composition root builds it, on the test database."""

from __future__ import annotations

from flask import Flask

from assembly import web_process
from core.config import Settings
from core.db import Database
from core.services import Services


def make_app(settings: Settings, db: Database) -> Flask:
    """Templates do not reload, as in production: pages that are kept (web.page_cache) are kept
    in every test, so that each test that watches a page change watches a kept one."""
    app = web_process(settings, services=Services.build(settings, db=db))
    app.config["TEMPLATES_AUTO_RELOAD"] = False
    return app
