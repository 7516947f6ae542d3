"""Builds an APScheduler with every job of `JOBS`, each firing only while we hold the lead."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.jobs import JOBS, ScheduledJob

log = logging.getLogger(__name__)
FIRST_BEAT_SECONDS = 1.0
# After the first beat: by then the leader lock is normally taken, and only a leader fires.
FIRST_RUN_SECONDS = 3.0


class Leadership(Protocol):
    identity: str

    @property
    def is_leader(self) -> bool: ...


Enqueue = Callable[..., None]


def fire(job_id: str, actor_name: str, leader: Leadership, enqueue: Enqueue) -> None:
    if not leader.is_leader:
        return
    try:
        enqueue(actor_name, scheduled_by=leader.identity, scheduled_job=job_id)
    except Exception as error:
        # The next tick tries again; the outbox keeps the events meanwhile.
        log.warning("scheduled job %s could not enqueue %s: %s", job_id, actor_name,
                    type(error).__name__)


def heartbeat_seconds(lock_ttl_seconds: float) -> float:
    """How often the leader says it is alive: as often as it renews its lock, at most 1/s."""
    return max(1.0, lock_ttl_seconds / 3)


def beat(leader: Leadership, heartbeat: Callable[[], None]) -> None:
    if not leader.is_leader:
        return
    try:
        heartbeat()
    except Exception as error:  # /api/health reports the silence; the jobs go on
        log.warning("scheduler heartbeat failed: %s", type(error).__name__)


def add_jobs(scheduler: BaseScheduler, leader: Leadership, enqueue: Enqueue,
             jobs: tuple[ScheduledJob, ...] = JOBS, *,
             heartbeat: tuple[Callable[[], None], float] | None = None) -> None:
    """`enqueue(actor_name, **options)` sends a message to the named actor. `heartbeat`: a
    function the leader calls every so many seconds, in this process (/api/health's
    `scheduler` check reads what it writes)."""
    if heartbeat is not None:
        function, every = heartbeat
        # The first beat a moment after start (once the lead is taken), not a whole interval
        # later: until then /api/health reads the scheduler as silent, the platform degraded.
        scheduler.add_job(beat, trigger=IntervalTrigger(seconds=every), args=(leader, function),
                          id="scheduler-heartbeat", name="the leader says it is alive",
                          replace_existing=True, coalesce=True, max_instances=1,
                          misfire_grace_time=max(1, int(every / 2)),
                          next_run_time=datetime.now(UTC) + timedelta(
                              seconds=min(FIRST_BEAT_SECONDS, every)))
    for job in jobs:
        # Only a job that asks for it gets a first run time: None would pause the job.
        first_run = ({"next_run_time": datetime.now(UTC) + timedelta(seconds=FIRST_RUN_SECONDS)}
                     if job.at_start else {})
        scheduler.add_job(
            fire,
            trigger=job.trigger,
            args=(job.id, job.actor, leader, enqueue),
            id=job.id,
            name=job.description,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            # The default (1 s) silently drops runs on a busy machine.
            misfire_grace_time=max(1, int(job.period_seconds / 2)),
            **first_run,
        )


def scheduler_options() -> dict[str, Any]:
    return {"timezone": UTC, "job_defaults": {"coalesce": True, "max_instances": 1}}
