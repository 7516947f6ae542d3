"""`python -m assembly`: the whole platform in one process (`make run` without Redis).

Web pages, the worker (threads draining the in-process broker) and the scheduler, all here, on
SQLite unless DATABASE_URL says otherwise. With REDIS_URL/BROKER_URL set, run the Procfile
processes instead (`make run` does that for you).
"""

from __future__ import annotations

import argparse
import os

from werkzeug.serving import run_simple

from assembly import web_process, worker_side_of
from core.config import Settings
from core.db import check_connection
from core.entry import exit_on_startup_error
from scheduler.embedded import start_embedded_scheduler
from workers.embedded import start_embedded_worker


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m assembly", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    args = parser.parse_args()

    with exit_on_startup_error("web"):
        settings = Settings.from_env()
        # One thread per connection here (not gunicorn's fixed pool): streams are cheap.
        settings = settings.with_overrides(notification_streams=max(
            settings.notification_streams, 64))
        if not settings.embedded:
            raise SystemExit("web: BROKER_URL/REDIS_URL is set; run the Procfile processes "
                             "(make run does) instead of the embedded server")
        app = web_process(settings)
        side = worker_side_of(app)
        check_connection(side.services.db.engine)

    start_embedded_worker(side, settings.embedded_worker_threads)
    start_embedded_scheduler(side.enqueue, settings, side.services.cache)
    url = f"http://{args.host}:{args.port}"
    print(f"\n  Practice Platform is running at {url}\n  (embedded mode: SQLite at "
          f"{settings.database_url.removeprefix('sqlite:///')}, mail in "
          f"{settings.instance_path / 'mail'}; Ctrl+C stops it)\n", flush=True)
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False, use_debugger=False)


if __name__ == "__main__":
    main()
