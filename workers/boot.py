"""The worker process's composition root: `dramatiq workers.boot --processes 2 --threads 8`.

Reads the settings, builds the services, connects the real broker (Redis or RabbitMQ) and
declares every actor on it; the `dramatiq` command then consumes that broker.
"""

from __future__ import annotations

import os

from dramatiq.middleware.prometheus import DB_PATH

# WORKER_METRICS_PORT: Dramatiq's exposition server (a process of its own) reads every worker
# process's values from DB_PATH, so they must be written there (prometheus_client's multiprocess
# mode) from the first metric on, before anything imports prometheus_client.
if os.environ.get("WORKER_METRICS_PORT") and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(DB_PATH, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = DB_PATH

import dramatiq

from core.config import Settings
from core.db import check_connection, require_rls_bound_role
from core.entry import exit_on_startup_error
from core.logs import configure_logging
from core.services import Services
from workers.middleware import ClaimLiveness, ExitWithParent
from workers.wiring import assemble

with exit_on_startup_error("worker"):
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level, take_over=True)
    if settings.embedded:
        raise SystemExit(
            "worker: no BROKER_URL or REDIS_URL is set. In embedded mode the worker runs inside "
            "the web process (make run); a separate worker needs a Redis or RabbitMQ broker."
        )
    # Batches and exports run here: a longer statement timeout than the web's.
    services = Services.build(settings,
                              statement_timeout_ms=settings.worker_statement_timeout_ms)
    if settings.is_production:
        check_connection(services.db.engine)
        require_rls_bound_role(services.db.engine)
    side = assemble(settings, services)
    side.broker.add_middleware(ExitWithParent())
    side.broker.add_middleware(ClaimLiveness(side.runtime))
    if settings.worker_metrics_port:
        # Dramatiq's own exposition (messages, errors, retries, durations per actor): one HTTP
        # server per worker host, on WORKER_METRICS_PORT.
        from workers.prometheus import WorkerPrometheus

        side.broker.add_middleware(WorkerPrometheus())
    dramatiq.set_broker(side.broker)  # what the `dramatiq` command consumes
