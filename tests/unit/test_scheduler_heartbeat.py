"""The scheduler says it is alive soon after it starts, not one whole interval later (until its
first heartbeat /api/health reads it as silent and the platform as degraded); the jobs that ask
for it run then too."""

from __future__ import annotations

import threading

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.jobs import JOBS, ScheduledJob
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


def test_a_job_asked_to_run_at_start_fires_within_seconds_and_the_others_wait() -> None:
    """The metrics rollup runs as the scheduler starts: a fresh deployment's dashboards show
    figures at once, not after five minutes of "not counted yet"."""
    fired: list[str] = []
    rolled_up = threading.Event()

    def enqueue(actor: str, **_options: object) -> None:
        fired.append(actor)
        if actor == "rollup_metrics":
            rolled_up.set()

    [rollup] = [job for job in JOBS if job.id == "metrics-rollup"]
    assert rollup.at_start
    hourly = ScheduledJob("hourly", "something_hourly", IntervalTrigger(hours=1), "waits")
    scheduler = BackgroundScheduler(**scheduler_options())
    add_jobs(scheduler, _Leader(), enqueue, jobs=(rollup, hourly))
    scheduler.start()
    try:
        assert rolled_up.wait(timeout=10), "the rollup did not run within 10 s of start"
    finally:
        scheduler.shutdown(wait=False)
    assert fired == ["rollup_metrics"]
