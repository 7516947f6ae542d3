"""`python -m scheduler`, the scheduler process's composition root: one BlockingScheduler per
process; only the leader's jobs fire, and they only enqueue actors."""

from __future__ import annotations

import logging
import signal
import sys

from apscheduler.schedulers.blocking import BlockingScheduler

from core.config import Settings
from core.db import check_connection, create_db_engine, require_rls_bound_role
from core.entry import exit_on_startup_error
from core.logs import configure_logging
from core.monitoring.checks import beat_scheduler
from scheduler.jobs import job_table
from scheduler.leader import RedisLeaderLock
from scheduler.runner import add_jobs, heartbeat_seconds, scheduler_options

log = logging.getLogger("scheduler")


def main() -> None:
    with exit_on_startup_error("scheduler"):
        settings = Settings.from_env()
        if settings.is_production and not settings.embedded:
            engine = create_db_engine(settings.database_url)
            check_connection(engine)
            require_rls_bound_role(engine)
            engine.dispose()
    configure_logging(settings.log_format, settings.log_level, take_over=True)
    if settings.embedded or settings.redis_url is None:
        print("scheduler: REDIS_URL is not set. In embedded mode the scheduler runs inside the "
              "web process (make run); a separate scheduler needs Redis for its leader lock.",
              file=sys.stderr)
        raise SystemExit(2)

    import redis

    from core.services import Services
    from workers.wiring import assemble

    # Jobs only enqueue: the broker and the actors' names are all this process uses of them.
    side = assemble(settings, Services.build(settings))
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    leader = RedisLeaderLock(client, settings.scheduler_lock_ttl_seconds)
    scheduler = BlockingScheduler(**scheduler_options())
    every = heartbeat_seconds(settings.scheduler_lock_ttl_seconds)
    add_jobs(scheduler, leader, side.enqueue, job_table(settings), heartbeat=(
        lambda: beat_scheduler(side.services.cache, leader.identity, every), every))

    def shut_down(signum: int, _frame: object) -> None:
        log.info("scheduler stopping (signal %d)", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    leader.start()
    log.info("scheduler %s started with %d jobs; waiting for the lead", leader.identity,
             len(scheduler.get_jobs()))
    try:
        scheduler.start()
    finally:
        leader.stop()


if __name__ == "__main__":
    main()
