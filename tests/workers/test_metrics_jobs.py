"""The rollup as the platform runs it: the scheduled actor, and `flask metrics rollup`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core import clock
from core.config import ConfigError, Settings
from core.metrics import read
from core.scoping import system_session
from scheduler.jobs import JOBS, job_table
from tests.support.activity import MovableClock, all_points, client_signs_up, scope_of
from tests.support.factories import practice

SUNDAY = datetime(2026, 3, 1, 15, tzinfo=UTC)


@pytest.fixture
def moving_clock(monkeypatch) -> MovableClock:
    moving = MovableClock(SUNDAY)
    monkeypatch.setattr(clock, "now", moving)
    return moving


def test_the_scheduled_actor_rolls_up(app, side, worker, db, moving_clock):
    practice(db, "Harbour", slug_hint="harbour")
    moving_clock.advance(minutes=5)
    side.enqueue("rollup_metrics")
    worker.drain()
    with system_session(db) as session:
        figures = read.figures(session)
    assert figures.as_of == SUNDAY + timedelta(minutes=4)
    assert figures.people_by_role == {"admin": 0, "client": 1, "therapist": 1}


def test_the_rollup_job_runs_every_five_minutes_unless_told_otherwise(tmp_path):
    [job] = [job for job in JOBS if job.id == "metrics-rollup"]
    assert (job.actor, job.period_seconds) == ("rollup_metrics", 300)
    told = Settings.from_env({"INSTANCE_PATH": str(tmp_path), "METRICS_ROLLUP_SECONDS": "2"})
    [quick] = [job for job in job_table(told) if job.id == "metrics-rollup"]
    assert quick.period_seconds == 2
    with pytest.raises(ConfigError, match="METRICS_ROLLUP_SECONDS must be at least 1"):
        Settings.from_env({"INSTANCE_PATH": str(tmp_path), "METRICS_ROLLUP_SECONDS": "0"})


def test_cli_backfills_the_days_it_is_given(app, db, moving_clock):
    harbour = practice(db, "Harbour", slug_hint="harbour")  # Sunday
    moving_clock.at(SUNDAY + timedelta(hours=20))  # Monday 11:00
    client_signs_up(db, harbour, "monday@harbour.example")
    moving_clock.advance(minutes=10)
    runner = app.test_cli_runner()
    harbour_scope = scope_of(db, harbour.tenant.id)

    def signups_on(day: int) -> float | None:
        bucket = datetime(2026, 3, day, tzinfo=UTC)
        return next((value for key, value in all_points(db).items()
                     if (key.metric, key.scope, key.grain, key.bucket, key.dimension)
                     == ("signups", harbour_scope, "day", bucket, "client")), None)

    first = runner.invoke(args=["metrics", "rollup"])
    assert first.exit_code == 0, first.output
    # No watermark yet: the first rollup starts at the first account's day (Sunday).
    assert "metrics rolled up to 2026-03-02 11:09 UTC: 2 day(s) of flows recounted" in first.output
    assert (signups_on(1), signups_on(2)) == (1, 1)

    later = runner.invoke(args=["metrics", "rollup"])  # from the watermark's day: Monday
    assert later.exit_code == 0 and "1 day(s) of flows recounted" in later.output, later.output

    backfill = runner.invoke(args=["metrics", "rollup", "--since", "2026-03-01"])
    assert backfill.exit_code == 0, backfill.output
    assert "2 day(s) of flows recounted" in backfill.output
    assert (signups_on(1), signups_on(2)) == (1, 1)

    refused = runner.invoke(args=["metrics", "rollup", "--since", "March"])
    assert refused.exit_code == 2 and "--since" in refused.output


def test_the_daily_recount_puts_levels_right_after_an_erasure_deleted_an_account(
        app, side, worker, db, moving_clock):
    import sqlalchemy as sa

    from core.identity.models import Account
    from core.onboarding.models import OnboardingProgress

    harbour = practice(db, "Harbour", slug_hint="harbour")
    walker = client_signs_up(db, harbour, "walker@harbour.example")
    moving_clock.advance(minutes=5)
    side.enqueue("rollup_metrics")
    worker.drain()

    def clients() -> tuple[int, int]:
        with system_session(db) as session:
            return (read.figures(session).people_by_role["client"],
                    read.figures(session, tenant_id=harbour.tenant.id).people_by_role["client"])

    assert clients() == (2, 2)
    with system_session(db) as session:  # what an erasure does to the person's rows
        session.execute(sa.delete(OnboardingProgress).where(
            OnboardingProgress.account_id == walker.id))
        session.execute(sa.delete(Account).where(Account.id == walker.id))
        session.commit()
    moving_clock.advance(minutes=5)
    side.enqueue("rollup_metrics")
    worker.drain()
    assert clients() == (2, 2)  # a tick moves levels by what happened; a deletion left nothing

    moving_clock.advance(minutes=5)
    side.enqueue("recount_metrics")
    worker.drain()
    assert clients() == (1, 1)
    [job] = [job for job in JOBS if job.id == "metrics-recount"]
    assert job.actor == "recount_metrics" and str(job.trigger.fields[5]) == "3"  # hour, daily
