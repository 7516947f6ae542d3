"""gunicorn settings for the `web` process (read automatically from the working directory)."""

import os
import sys

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"  # noqa: S104
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads let a long-lived notification stream hold a thread rather than a whole process.
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = 30
graceful_timeout = 20
keepalive = 5
# Our own request log line carries the request id; gunicorn's access log would repeat it.
accesslog = None
errorlog = "-"
# gunicorn 27's control socket has one path per user; two servers on one host would fight over it.
control_socket_disable = True


def _preflight():
    """Refuse to start, with one line, when settings are wrong or the database is unreachable.

    Runs while gunicorn reads this file, before its master logs anything or forks workers.
    """
    from core.config import ConfigError, Settings
    from core.db import (
        DatabaseUnavailable,
        check_connection,
        create_db_engine,
        require_rls_bound_role,
    )

    try:
        settings = Settings.from_env()
        engine = create_db_engine(settings.database_url,
                                  statement_timeout_ms=settings.database_statement_timeout_ms)
        try:
            check_connection(engine)
            if settings.is_production:
                require_rls_bound_role(engine)
        finally:
            engine.dispose()
    except (ConfigError, DatabaseUnavailable) as error:
        print(f"web: {error}", file=sys.stderr, flush=True)
        sys.exit(2)


_preflight()


def on_starting(server):
    """/metrics in multiprocess mode: the counters of the last run are not this run's."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.endswith(".db"):
                os.unlink(os.path.join(folder, name))


def child_exit(server, worker):
    """A dead web worker's live gauges go; its counters still count in the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Embedded mode under gunicorn: each web worker drains its own in-process broker."""
    from core.config import Settings

    settings = Settings.from_env()
    if settings.embedded:
        from assembly import worker_side_of
        from workers.embedded import start_embedded_worker

        start_embedded_worker(worker_side_of(worker.wsgi), settings.embedded_worker_threads)
        worker.log.warning("embedded mode under gunicorn: scheduled jobs do not run here; "
                           "use `make run`, or set REDIS_URL and run the scheduler process")
