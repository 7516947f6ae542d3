"""Embedded mode: the same job table on a BackgroundScheduler inside the one process."""

from __future__ import annotations

import atexit

from apscheduler.schedulers.background import BackgroundScheduler

from core.adapters.cache import Cache
from core.config import Settings
from core.monitoring.checks import beat_scheduler
from scheduler.jobs import job_table
from scheduler.leader import AlwaysLeader
from scheduler.runner import Enqueue, add_jobs, heartbeat_seconds, scheduler_options


def start_embedded_scheduler(enqueue: Enqueue, settings: Settings,
                             cache: Cache | None = None) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(**scheduler_options())
    leader = AlwaysLeader()
    every = heartbeat_seconds(settings.scheduler_lock_ttl_seconds)
    add_jobs(scheduler, leader, enqueue, job_table(settings), heartbeat=(
        (lambda: beat_scheduler(cache, leader.identity, every), every) if cache else None))
    scheduler.start()
    atexit.register(lambda: scheduler.shutdown(wait=False))
    return scheduler
