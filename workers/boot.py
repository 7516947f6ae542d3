"""Entry point of a worker process: `dramatiq workers.boot --processes 2 --threads 8`.

Reads the settings, connects the real broker (Redis or RabbitMQ) and declares every actor on it.
"""

from __future__ import annotations

from core.config import Settings
from core.entry import exit_on_startup_error
from core.logs import configure_logging
from workers.broker import build_broker, install_broker
from workers.middleware import ExitWithParent
from workers.runtime import configure

with exit_on_startup_error("worker"):
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level, take_over=True)
    if settings.embedded:
        raise SystemExit(
            "worker: no BROKER_URL or REDIS_URL is set. In embedded mode the worker runs inside "
            "the web process (make run); a separate worker needs a Redis or RabbitMQ broker."
        )
    configure(settings)
    broker = build_broker(settings)
    broker.add_middleware(ExitWithParent())
    install_broker(broker)
