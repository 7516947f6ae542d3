"""The rollup: one transaction that recomputes what changed since the watermark and moves the
watermark with it. A crash anywhere rolls all of it back; the next run starts from the same
watermark and does the same work, for a little longer stretch of time.

Run by the workers on the scheduler's clock, and by `flask metrics rollup` (full, or a backfill).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.caching import PRACTICE_FIGURES, WholeRegion, invalidate_after_commit
from core.db import insert_ignoring_conflicts
from core.events.models import EVENTS
from core.metrics import activity, flows, levels
from core.metrics.flows import ACCOUNTS, DEAD_LETTERS, INVITATIONS
from core.metrics.models import MetricRollup
from core.metrics.names import COUNTED_EVENT_TYPES, FLOW_EVENT_METRICS, Grain
from core.metrics.plan import RollupPlan, Shape, floor
from core.metrics.sql import Read, Rows, bucket_of, type_in
from core.uow import UnitOfWork

log = logging.getLogger(__name__)

# The points stop this far behind the clock. A row is stamped when its transaction records it
# and becomes visible when that commits; a web request commits well within this, so nothing
# stamped before as_of can still be on its way once a rollup has read up to as_of.
LAG = timedelta(minutes=1)
# How far back a platform's first rollup counts the days' figures: the longest period the
# pages show (core.metrics.read.PERIODS).
BACKFILL = timedelta(days=90)
WATERMARK = "points"

# One statement each, built once per plan shape; None when it has nothing to do.
Family = Callable[[Shape], sa.Insert | None]
# Flows first; among the levels, onboarding reads the people and practices read the active
# people just written.
FAMILIES: tuple[Family, ...] = (
    flows.counts, flows.dead_letters, flows.onboarding_medians,
    levels.people, levels.onboarding, activity.active_people, activity.active_practices,
    levels.outbox_backlog,
)


# Read before the statements that write points (see core.metrics.sql.Read).
READS: tuple[Read, ...] = (levels.PEOPLE_COUNTS,)


@dataclass(frozen=True)
class RollupReport:
    as_of: datetime | None  # the new watermark (None: nothing had happened since the last)
    since: datetime | None  # the previous one (None: a full rollup)
    hours: tuple[datetime, ...]  # hour buckets whose flows were recounted
    days: tuple[datetime, ...]
    points_written: int  # inserted or changed; an unchanged point is not rewritten

    @property
    def full(self) -> bool:
        return self.as_of is not None and self.since is None


def run(uow: UnitOfWork, *, now: datetime | None = None, full: bool = False,
        since: date | None = None) -> RollupReport:
    """Roll up and commit. Incremental from the watermark unless `full`, `since` (the first
    day whose flows are recounted: a backfill) or there is no watermark yet; a full rollup
    recomputes every level from the tables."""
    session = uow.session
    now = now or clock.now()
    watermark = _claim_watermark(session)
    if session.get_bind().dialect.name == "postgresql":
        # A full rollup groups a few hundred thousand rows: in memory, not in temporary files.
        # No JIT: the planner's costs of the full rollup's sign-in aggregate pass its threshold,
        # and compiling it took 40 ms of a 340 ms statement (EXPLAIN ANALYZE) that it did not
        # make faster; the statements run once per rollup, so nothing is gained back.
        session.execute(sa.text("SELECT set_config('work_mem', '64MB', true), "
                                "set_config('jit', 'off', true)"))
    plan = _plan(session, watermark.as_of, now=now, full=full or since is not None, since=since)
    if plan is None:
        uow.rollback()
        return RollupReport(None, watermark.as_of, (), (), 0)
    shape, parameters = plan.shape, dict[str, object](plan.parameters())
    for read in READS:
        select = read.select(shape)
        if select is not None:
            parameters.update(read.parameters(session.execute(select, parameters).all()))
    written = sum(_execute(session, family(shape), parameters) for family in FAMILIES)
    watermark.as_of, watermark.updated_at = plan.as_of, now
    if plan.full:
        watermark.full_as_of = plan.as_of
    # Core upserts, which the ORM does not see: every practice's cached figures go at commit.
    invalidate_after_commit(session, WholeRegion(PRACTICE_FIGURES))
    uow.commit()
    log.info("metrics rolled up to %s (%s): %d hour(s), %d day(s), %d point(s) written",
             plan.as_of.isoformat(), "full" if plan.full else "incremental", len(plan.hours),
             len(plan.days), written)
    return RollupReport(plan.as_of, plan.since, plan.hours, plan.days, written)


def _execute(session: Session, statement: sa.Insert | None,
             parameters: dict[str, object]) -> int:
    """Run one family's statement; how many points it wrote."""
    if statement is None:
        return 0
    result: sa.CursorResult[Any] = session.execute(  # type: ignore[assignment]
        statement, parameters)
    if session.get_bind().dialect.name == "sqlite":
        # pysqlite counts rows only for statements that begin with INSERT, not WITH.
        return int(session.execute(sa.text("SELECT changes()")).scalar_one())
    return result.rowcount


def as_of(session: Session) -> datetime | None:
    """How far the points are complete, or None before the first rollup."""
    return session.execute(sa.select(MetricRollup.as_of).where(
        MetricRollup.name == WATERMARK)).scalar_one_or_none()


def _claim_watermark(session: Session) -> MetricRollup:
    """The watermark row, locked until commit: two rollups at once would move the levels twice
    by the same events. (SQLite: the write transaction already holds the database.)"""
    insert_ignoring_conflicts(session, MetricRollup.__table__,  # type: ignore[arg-type]
                              [{"name": WATERMARK}])
    return session.execute(sa.select(MetricRollup).where(MetricRollup.name == WATERMARK)
                           .with_for_update()).scalar_one()


def _plan(session: Session, watermark: datetime | None, *, now: datetime, full: bool,
          since: date | None) -> RollupPlan | None:
    dialect = session.get_bind().dialect.name
    as_of = now - LAG
    if full or watermark is None:
        # From the given day, else from the day of the last watermark: nothing is skipped.
        if since is not None:
            first = datetime.combine(since, time(), UTC)
        elif watermark is not None:
            first = floor(watermark, Grain.DAY)
        else:
            first = _first_day(session, as_of)
        return RollupPlan(dialect, as_of, None, _every(Grain.HOUR, first, as_of),
                          _every(Grain.DAY, first, as_of), now)
    if as_of <= watermark:
        return None
    hours = _changed_hours(session, dialect, watermark, as_of)
    days = tuple(sorted({floor(hour, Grain.DAY) for hour in hours}))
    return RollupPlan(dialect, as_of, watermark, hours, days, now)


def _first_day(session: Session, as_of: datetime) -> datetime:
    """Where a platform's first rollup starts: the day of its first account (everything it
    counts comes from an account), at most BACKFILL_DAYS back. Without this, the activity of the
    days before the first rollup (or of the minutes before midnight) would never be counted."""
    earliest = floor(as_of, Grain.DAY)
    first_account = session.execute(sa.select(sa.func.min(ACCOUNTS.c.created_at))).scalar()
    if first_account is not None:
        if first_account.tzinfo is None:  # SQLite hands timestamps back naive, in UTC
            first_account = first_account.replace(tzinfo=UTC)
        earliest = min(earliest, floor(first_account, Grain.DAY))
    return max(earliest, floor(as_of - BACKFILL, Grain.DAY))


def _every(grain: Grain, first: datetime, last: datetime) -> tuple[datetime, ...]:
    start, end = floor(first, grain), floor(last, grain)
    count = int((end - start) / grain.length) + 1
    return tuple(start + n * grain.length for n in range(max(count, 0)))


def _changed_hours(session: Session, dialect: str, since: datetime,
                   as_of: datetime) -> tuple[datetime, ...]:
    """The hours holding a row that a flow counts and that was stamped in (since, as_of]."""

    def hours(moment: sa.ColumnElement[datetime], *where: sa.ColumnElement[bool]) -> Rows:
        return sa.select(bucket_of(moment, Grain.HOUR, dialect).label("hour")).where(
            moment > since, moment <= as_of, *where)

    e, i = EVENTS.c, INVITATIONS.c
    query = sa.union(
        hours(ACCOUNTS.c.created_at),
        hours(e.occurred_at, type_in(e.type, COUNTED_EVENT_TYPES),
              type_in(e.type, tuple(FLOW_EVENT_METRICS))),
        hours(i.expires_at, i.accepted_at.is_(None)),
        hours(DEAD_LETTERS.c.failed_at),
    )
    return tuple(sorted(session.execute(query).scalars()))
