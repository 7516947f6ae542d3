"""Every periodic job, in one table. Ids are stable, so a restart replaces rather than duplicates.

A job only enqueues an actor; the work itself runs on the workers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.config import Settings


@dataclass(frozen=True)
class ScheduledJob:
    id: str
    actor: str
    trigger: Any
    description: str
    # Also run a moment after the scheduler starts, not first a whole interval later.
    at_start: bool = False

    @property
    def period_seconds(self) -> float:
        interval = getattr(self.trigger, "interval", None)
        return interval.total_seconds() if interval is not None else 3600.0


JOBS: tuple[ScheduledJob, ...] = (
    ScheduledJob("relay-outbox", "relay_outbox", IntervalTrigger(seconds=2),
                 "publish events whose fast-path publish was missed"),
    ScheduledJob("audit-sweep", "write_audit", IntervalTrigger(seconds=30),
                 "write audit entries for events whose nudge was lost"),
    ScheduledJob("audit-sink", "deliver_audit_to_sink", IntervalTrigger(seconds=60),
                 "send the external audit sink what it has not had (when AUDIT_SINK_URL is set)"),
    ScheduledJob("audit-checkpoint", "sign_audit_checkpoint", CronTrigger(minute=0, timezone="UTC"),
                 "sign the audit chains' heads and send the checkpoint to the sink (hourly)"),
    ScheduledJob("audit-verify", "verify_audit_log",
                 CronTrigger(hour=2, minute=30, timezone="UTC"),
                 "verify every audit chain; alert the admins on a break (daily)"),
    ScheduledJob("audit-retention", "apply_audit_retention",
                 CronTrigger(hour=3, minute=15, timezone="UTC"),
                 "create the audit log's monthly partitions ahead; archive and drop months past "
                 "retention (daily)"),
    ScheduledJob("onboarding-reminders", "send_onboarding_reminders",
                 CronTrigger(minute=5, timezone="UTC"),
                 "remind people whose onboarding stalled (hourly, in their daytime)"),
    # At start too: a fresh deployment's dashboards show figures within seconds, not after
    # five minutes of "not counted yet".
    ScheduledJob("metrics-rollup", "rollup_metrics", IntervalTrigger(seconds=300),
                 "roll up what changed since the last run into metric_points", at_start=True),
    ScheduledJob("metrics-recount", "recount_metrics",
                 CronTrigger(hour=3, minute=45, timezone="UTC"),
                 "count every metrics level afresh from the tables, righting what ticks cannot "
                 "see, such as accounts an erasure deleted (daily)"),
    ScheduledJob("health-sample", "record_health", IntervalTrigger(seconds=60),
                 "record every health check; open and close incidents (kept 7 days)"),
    ScheduledJob("privacy", "run_privacy_jobs", CronTrigger(minute=20, timezone="UTC"),
                 "erasure reminders, due erasures, and restricted records whose hold or "
                 "retention ended (hourly)"),
)


def job_table(settings: Settings) -> tuple[ScheduledJob, ...]:
    """JOBS, at the intervals the settings ask for (METRICS_ROLLUP_SECONDS)."""
    every = {"metrics-rollup": settings.metrics_rollup_seconds}
    return tuple(replace(job, trigger=IntervalTrigger(seconds=every[job.id]))
                 if job.id in every else job for job in JOBS)
