"""The composition roots: each process assembled, once, from its parts.

`web_process()` builds what `gunicorn wsgi:app` serves; `embedded` runs web, worker and
scheduler in one process (`make run` without Redis). The worker and scheduler processes have
their own roots in `workers/boot.py` and `scheduler/__main__.py`. Nothing else builds services,
brokers or actors, and web/ and workers/ meet only here.
"""

from __future__ import annotations

from flask import Flask

from core.config import Settings
from core.logs import configure_logging
from core.services import Services
from web import create_app
from workers.wiring import WorkerSide, assemble


def web_process(settings: Settings | None = None, *, services: Services | None = None) -> Flask:
    """The web tier with the worker side it hands events to (a real broker, or in embedded
    mode an in-process one that `embedded` drains)."""
    settings = settings or Settings.from_env()
    # Request threads hand their log lines to a writer thread; tests keep writing them at once,
    # inside the capture of the test that logged them.
    configure_logging(settings.log_format, settings.log_level,
                      queued=settings.app_env != "test")
    services = services or Services.build(settings)
    side = assemble(settings, services)
    app = create_app(settings, services=services, background=side)
    app.extensions["worker_side"] = side  # for the embedded root and the tests
    return app


def worker_side_of(app: Flask) -> WorkerSide:
    side: WorkerSide = app.extensions["worker_side"]
    return side
