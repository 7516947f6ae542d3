"""The real scheduler process enqueues the rollup; a real dramatiq worker process runs it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from core import clock
from core.adapters.cache import build_cache
from core.metrics import read
from core.scoping import system_session
from tests.support.factories import practice
from tests.support.processes import dramatiq_worker, platform_env, scheduler, wait_until

pytestmark = pytest.mark.integration

TICK_SECONDS = 2


def _figures(db) -> read.Figures:
    with system_session(db) as session:
        return read.figures(session)


def test_points_appear_within_one_tick(db, database_url, redis_url, tmp_path, monkeypatch):
    # Activity a few minutes old: the rollup stops a minute behind the clock (rollup.LAG).
    monkeypatch.setattr(clock, "now", lambda: datetime.now(UTC) - timedelta(minutes=5))
    practice(db, "Harbour", slug_hint="harbour")
    monkeypatch.undo()

    env = platform_env(DATABASE_URL=database_url, REDIS_URL=redis_url,
                       INSTANCE_PATH=str(tmp_path), SCHEDULER_LOCK_TTL="2",
                       METRICS_ROLLUP_SECONDS=str(TICK_SECONDS))
    worker = dramatiq_worker(env, tmp_path / "worker.log")
    leader = None
    try:
        wait_until(lambda: build_cache(redis_url).alive("workers"), 60, "worker heartbeat")
        leader = scheduler(env, tmp_path / "scheduler.log")
        wait_until(lambda: "is now the leader" in leader.output(), 30, "scheduler leadership")
        led_at = time.monotonic()
        wait_until(lambda: _figures(db).as_of is not None, 30, "the first rollup")
        # One tick after taking the lead, plus the time the worker takes to run it.
        assert time.monotonic() - led_at < TICK_SECONDS + 5
        first = _figures(db)
        assert first.people_by_role == {"admin": 0, "client": 1, "therapist": 1}
        assert first.onboarding_completion_rate == 1.0
        # Later ticks move the watermark on, incrementally.
        wait_until(lambda: _figures(db).as_of > first.as_of, 30, "a later tick")
        assert _figures(db).people_by_role == first.people_by_role
    finally:
        if leader is not None:
            leader.stop()
        worker.stop()
    for process in (worker, leader):
        assert "Traceback" not in process.output(), process.output()
    assert "metrics rolled up" in worker.output()
