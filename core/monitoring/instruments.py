"""What a Prometheus scrape reads from the database and the cache: outbox, dead letters,
handler runs, scheduled jobs, the rollup's figures.

The counters each process keeps are in core.telemetry; these gauges are read fresh on each
scrape, within the database's statement timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.adapters.cache import Cache
from core.db import Database
from core.events.models import DeadLetter, HandlerRun
from core.events.outbox import backlog
from core.metrics import read
from core.scoping import system_session

log = logging.getLogger(__name__)

JOB_SUCCESS_KEY = "jobs:last-success:"


def note_job_success(cache: Cache, job_id: str) -> None:
    """A scheduled job's actor finished (the workers call this; a scrape reads it)."""
    cache.set(JOB_SUCCESS_KEY + job_id, str(time.time()).encode(), 7 * 24 * 3600)


class PlatformCollector(Collector):
    """Gauges read at scrape time: the same numbers whichever process is scraped."""

    def __init__(self, db: Database, cache: Cache, job_ids: Sequence[str]) -> None:
        self.db, self.cache, self.job_ids = db, cache, tuple(job_ids)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            yield from self._from_database()
        except Exception as error:  # a scrape still answers with what it has
            log.warning("metrics scrape: database figures unavailable (%s)",
                        type(error).__name__)
        yield self._jobs()

    def _from_database(self) -> Iterator[GaugeMetricFamily]:
        with system_session(self.db) as session:
            state = backlog(session)
            dead = session.execute(sa.select(DeadLetter.queue, sa.func.count()).where(
                DeadLetter.retried_at.is_(None)).group_by(DeadLetter.queue)).all()
            runs = session.execute(sa.select(HandlerRun.handler, HandlerRun.status,
                                             sa.func.count()).group_by(
                HandlerRun.handler, HandlerRun.status)).all()
            figures = read.figures(session)
        yield GaugeMetricFamily("platform_outbox_backlog", "Events not yet handed to the workers",
                                value=state.undispatched)
        yield GaugeMetricFamily("platform_outbox_oldest_age_seconds",
                                "Age of the oldest undispatched event (0: none)",
                                value=state.oldest_age_seconds or 0.0)
        letters = GaugeMetricFamily("platform_dead_letters", "Dead letters not replayed, by queue",
                                    labels=["queue"])
        for queue, count in dead:
            letters.add_metric([queue], count)
        yield letters
        handler_runs = GaugeMetricFamily("platform_handler_runs",
                                         "Handler runs by handler and outcome (running, done, "
                                         "dead)", labels=["handler", "outcome"])
        for handler, status, count in runs:
            handler_runs.add_metric([handler, status], count)
        yield handler_runs
        yield from self._rollup(figures)

    @staticmethod
    def _rollup(figures: read.Figures) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("platform_metrics_rollup_age_seconds",
                                "How old the rolled-up figures are (-1: never rolled up)",
                                value=figures.age_seconds if figures.age_seconds is not None
                                else -1.0)
        yield GaugeMetricFamily("platform_active_tenants",
                                "Active practices, as of the last rollup",
                                value=figures.active_practices)
        yield GaugeMetricFamily("platform_active_users",
                                "People who signed in within 30 days, as of the last rollup",
                                value=figures.active_users)
        rate = GaugeMetricFamily("platform_onboarding_completion_ratio",
                                 "Share of clients and therapists who completed set-up")
        if figures.onboarding_completion_rate is not None:
            rate.add_metric([], figures.onboarding_completion_rate)
        yield rate
        people = GaugeMetricFamily("platform_users", "Accounts by role, as of the last rollup",
                                   labels=["role"])
        for role, count in figures.people_by_role.items():
            people.add_metric([role], count)
        yield people

    def _jobs(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("platform_scheduler_job_last_success_timestamp_seconds",
                                   "When each scheduled job's actor last finished",
                                   labels=["job"])
        stored = self.cache.get_many([JOB_SUCCESS_KEY + job for job in self.job_ids]) or []
        for job, raw in zip(self.job_ids, stored, strict=False):
            if raw is not None:
                family.add_metric([job], float(raw))
        return family
