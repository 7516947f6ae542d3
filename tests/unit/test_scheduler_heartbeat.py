"""The scheduler says it is alive soon after it starts, not one whole interval later (until its
first heartbeat /api/health reads it as silent and the platform as degraded)."""

from __future__ import annotations

import threading

from apscheduler.schedulers.background import BackgroundScheduler

from scheduler.runner import add_jobs, scheduler_options


class _Leader:
    identity = "test"
    is_leader = True


def test_the_first_heartbeat_comes_a_moment_after_start_not_an_interval_later() -> None:
    beaten = threading.Event()
    scheduler = BackgroundScheduler(**scheduler_options())
    add_jobs(scheduler, _Leader(), lambda *_a, **_k: None, jobs=(),
             heartbeat=(beaten.set, 60.0))
    scheduler.start()
    try:
        assert beaten.wait(timeout=10), "no heartbeat within 10 s of start (interval 60 s)"
    finally:
        scheduler.shutdown(wait=False)
