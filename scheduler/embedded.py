"""Embedded mode: the same job table on a BackgroundScheduler inside the one process."""

from __future__ import annotations

import atexit

from apscheduler.schedulers.background import BackgroundScheduler

from core.config import Settings
from scheduler.jobs import job_table
from scheduler.leader import AlwaysLeader
from scheduler.runner import Enqueue, add_jobs, scheduler_options


def start_embedded_scheduler(enqueue: Enqueue, settings: Settings) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(**scheduler_options())
    add_jobs(scheduler, AlwaysLeader(), enqueue, job_table(settings))
    scheduler.start()
    atexit.register(lambda: scheduler.shutdown(wait=False))
    return scheduler
