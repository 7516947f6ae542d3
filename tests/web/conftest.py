from __future__ import annotations

import dramatiq
import pytest

from core.services import Services
from tests.support.platform import Platform
from tests.support.workers import EmbeddedWorker
from web import create_app


@pytest.fixture
def platform(settings, db, smtp_server):
    configured = settings.with_overrides(smtp_url=smtp_server.url)
    app = create_app(configured, services=Services.build(configured, db=db))
    worker = EmbeddedWorker(dramatiq.get_broker())
    yield Platform(app=app, smtp=smtp_server, worker=worker, db=db)
    worker.stop()
