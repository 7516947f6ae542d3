from __future__ import annotations

import pytest

from tests.support.apps import make_app
from tests.support.platform import Platform
from tests.support.workers import EmbeddedWorker


@pytest.fixture
def platform(settings, db, smtp_server):
    configured = settings.with_overrides(smtp_url=smtp_server.url)
    app = make_app(configured, db)
    worker = EmbeddedWorker(app)
    yield Platform(app=app, smtp=smtp_server, worker=worker, db=db)
    worker.stop()
