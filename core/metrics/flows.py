"""Flows: what happened within an hour or a day, counted from the rows' own timestamps. A
recount replaces a bucket's figures, so it can run any number of times.

The platform's flows are kept per hour and per day, a practice's per day (a few events an hour
are noise, not a chart). A person counts once per hour, and a day adds its hours up. Each
function returns one statement for a plan's shape (built once), or None when there is no hour
to recount.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from core.events.models import EVENTS, DeadLetter
from core.events.types import EventType
from core.identity.models import Account, Invitation
from core.metrics.names import (
    COUNTED_EVENT_TYPES,
    FLOW_EVENT_METRICS,
    NO_DIMENSION,
    PLATFORM,
    Grain,
    Metric,
)
from core.metrics.plan import Shape
from core.metrics.sql import (
    POINTS,
    Rows,
    bucket_of,
    moment,
    no_tenant,
    scope_of,
    seconds_between,
    type_in,
    upsert_points,
    within,
)
from core.onboarding.models import OnboardingProgress

# Every branch of a UNION that becomes points lists its columns in this order:
# metric, scope, grain, bucket, dimension, tenant_id, value.

# The rows a flow counts: (tenant_id, at, metric, dimension, who), filtered by time on `at`'s
# own column so that its index serves the filter.
RowSource = Callable[[Callable[[sa.ColumnElement[object]], sa.ColumnElement[bool]]], Rows]

ACCOUNTS: sa.Table = Account.__table__  # type: ignore[assignment]
INVITATIONS: sa.Table = Invitation.__table__  # type: ignore[assignment]
DEAD_LETTERS: sa.Table = DeadLetter.__table__  # type: ignore[assignment]
PROGRESS: sa.Table = OnboardingProgress.__table__  # type: ignore[assignment]
_INVITATION_EVENTS = (EventType.INVITATION_SENT.value, EventType.INVITATION_ACCEPTED.value)


@functools.cache
def counts(shape: Shape) -> sa.Insert | None:
    """Sign-ups by role; onboarding starts, stage completions (the funnel) and completions by
    role; invitations sent, accepted and expired. Each is a count of rows: one statement."""
    return _counted(shape, _signups, _event_flows, _expired_invitations)


@functools.cache
def dead_letters(shape: Shape) -> sa.Insert | None:
    """Messages that ran out of retries, by queue: a platform figure (no practice owns them)."""
    return _counted(shape, _dead_letters)


def _signups(when: Callable[..., sa.ColumnElement[bool]]) -> Rows:
    a = ACCOUNTS.c
    return sa.select(a.tenant_id, a.created_at.label("at"), _name(Metric.SIGNUPS),
                     a.role.label("dimension"), a.id.label("who")).where(when(a.created_at))


def _event_flows(when: Callable[..., sa.ColumnElement[bool]]) -> Rows:
    e = EVENTS.c
    role = e.payload["role"].as_string()
    metric = sa.case({t: m.value for t, m in FLOW_EVENT_METRICS.items()}, value=e.type)
    dimension = sa.case(
        (e.type == EventType.ONBOARDING_STAGE_COMPLETED.value,
         role + ":" + e.payload["stage"].as_string()),
        (e.type.in_(_INVITATION_EVENTS), NO_DIMENSION),
        else_=role)
    who = sa.case((e.type.in_(_INVITATION_EVENTS), e.id), else_=e.actor_account_id)
    return sa.select(e.tenant_id, e.occurred_at.label("at"), metric.label("metric"),
                     dimension.label("dimension"), who.label("who")).where(
        type_in(e.type, COUNTED_EVENT_TYPES), type_in(e.type, tuple(FLOW_EVENT_METRICS)),
        when(e.occurred_at))


def _expired_invitations(when: Callable[..., sa.ColumnElement[bool]]) -> Rows:
    """Invitations whose time ran out unused, in the bucket where it ran out."""
    i = INVITATIONS.c
    unused = sa.and_(i.accepted_at.is_(None),
                     sa.or_(i.revoked_at.is_(None), i.revoked_at > i.expires_at))
    return sa.select(i.tenant_id, i.expires_at.label("at"), _name(Metric.INVITATIONS_EXPIRED),
                     _name(NO_DIMENSION, "dimension"), i.id.label("who")).where(
        unused, when(i.expires_at))


def _dead_letters(when: Callable[..., sa.ColumnElement[bool]]) -> Rows:
    d = DEAD_LETTERS.c
    return sa.select(no_tenant(), d.failed_at.label("at"), _name(Metric.DEAD_LETTERS),
                     d.queue.label("dimension"), d.id.label("who")).where(when(d.failed_at))


@functools.cache
def onboarding_medians(shape: Shape) -> sa.Insert | None:
    """Median time from starting onboarding to completing it, of the completions in each bucket:
    the platform's per hour and per day, a practice's per day. Medians do not add up, so a day's
    is taken over all the day's completions (a practice's, where it completed someone in the
    hours recounted)."""
    if not shape.hour_spans:
        return None
    e, p = EVENTS.c, PROGRESS.c
    completions = sa.select(
        e.tenant_id, e.occurred_at.label("at"), p.role.label("dimension"),
        seconds_between(e.occurred_at, p.started_at, shape.dialect).label("seconds"),
    ).select_from(EVENTS.join(PROGRESS, p.account_id == e.actor_account_id)).where(
        type_in(e.type, COUNTED_EVENT_TYPES), e.type == EventType.ONBOARDING_COMPLETED.value,
        within(e.occurred_at, Grain.DAY, shape),
    ).cte("completions")
    c = completions.c
    in_hours = within(c.at, Grain.HOUR, shape)
    day = bucket_of(c.at, Grain.DAY, shape.dialect).label("bucket")
    by_scope = sa.union_all(
        sa.select(*_platform(), _name(Grain.HOUR.value, "grain"),
                  bucket_of(c.at, Grain.HOUR, shape.dialect).label("bucket"), c.dimension,
                  c.seconds).where(in_hours),
        sa.select(*_platform(), _name(Grain.DAY.value, "grain"), day, c.dimension, c.seconds),
        sa.select(scope_of(c.tenant_id).label("scope"), c.tenant_id,
                  _name(Grain.DAY.value, "grain"), day, c.dimension, c.seconds).where(
            c.tenant_id.in_(sa.select(c.tenant_id).where(in_hours))),
    ).cte("by_scope")
    s = by_scope.c
    partition = (s.scope, s.grain, s.bucket, s.dimension)
    ranked = sa.select(
        *s, sa.func.row_number().over(partition_by=partition, order_by=s.seconds).label("rank"),
        sa.func.count().over(partition_by=partition).label("n"),
    ).cte("ranked")
    r = ranked.c
    # The middle one (odd n) or the middle two (even n): 2·rank within [n, n + 2].
    medians = sa.select(
        _name(Metric.ONBOARDING_MEDIAN_SECONDS), r.scope, r.grain, r.bucket, r.dimension,
        r.tenant_id, sa.func.avg(r.seconds).label("value"),
    ).where((2 * r.rank).between(r.n, r.n + 2)).group_by(
        r.scope, r.grain, r.bucket, r.dimension, r.tenant_id)
    return upsert_points(shape.dialect, medians)


def _counted(shape: Shape, *sources: RowSource) -> sa.Insert | None:
    """The platform's hours are counted from the rows of the plan's hours, and each of its days
    adds its hours up: those just counted and those this rollup left alone (read back from their
    points). A practice's days (it has no hour points) are counted the same way by a full
    rollup, and moved by what their recounted hours gained by a tick. So a tick reads the rows
    of the hours it recounts and nothing else, and writes the points of the practices' figures
    that moved and the platform's."""
    if not shape.hour_spans:
        return None
    in_hours = _rows_in_hours(sources, shape).cte("hour_rows")
    h = in_hours.c
    hour = bucket_of(h.at, Grain.HOUR, shape.dialect)
    platform_hours = sa.select(
        h.metric, _name(PLATFORM, "scope"), _name(Grain.HOUR.value, "grain"),
        hour.label("bucket"), h.dimension, no_tenant(),
        sa.func.count(sa.distinct(h.who)).label("value"),
    ).group_by(h.metric, hour, h.dimension).cte("platform_hours")
    ph = platform_hours.c
    recounted = sa.select(ph.metric, ph.dimension).distinct().subquery("recounted")
    kept_points = POINTS.alias("kept")
    k = kept_points.c
    kept = sa.select(k.metric, k.bucket, k.dimension, k.value).select_from(
        recounted.join(kept_points, sa.and_(
            k.metric == recounted.c.metric, k.scope == PLATFORM, k.grain == Grain.HOUR.value,
            k.dimension == recounted.c.dimension)),
    ).where(within(k.bucket, Grain.DAY, shape),
            sa.not_(within(k.bucket, Grain.HOUR, shape))).subquery("kept_hours")
    platform_day_hours = sa.union_all(
        sa.select(ph.metric, ph.bucket, ph.dimension, ph.value), sa.select(*kept.c),
    ).subquery("platform_day_hours")
    d = platform_day_hours.c
    platform_day = bucket_of(d.bucket, Grain.DAY, shape.dialect)
    platform_days = sa.select(
        d.metric, _name(PLATFORM, "scope"), _name(Grain.DAY.value, "grain"),
        platform_day.label("bucket"), d.dimension, no_tenant(),
        sa.func.sum(d.value).label("value"),
    ).group_by(d.metric, platform_day, d.dimension)
    return upsert_points(shape.dialect, sa.union_all(
        sa.select(*ph), platform_days, _practice_days(shape, in_hours)))


def _practice_days(shape: Shape, in_hours: sa.CTE) -> Rows:
    """Each practice's days, counted per hour and added up, like the platform's. A full rollup's
    hours are every hour of its days, so its rows of the hours are all the days' rows."""
    if not shape.full:
        return _practice_days_moved(shape, in_hours)
    h = in_hours.c
    hour = bucket_of(h.at, Grain.HOUR, shape.dialect)
    hourly = sa.select(
        h.tenant_id, h.metric, h.dimension, hour.label("hour"),
        sa.func.count(sa.distinct(h.who)).label("value"),
    ).where(h.tenant_id.is_not(None)).group_by(h.tenant_id, h.metric, hour, h.dimension
                                               ).subquery("practice_hours")
    p = hourly.c
    day = bucket_of(p.hour, Grain.DAY, shape.dialect)
    return sa.select(
        p.metric, scope_of(p.tenant_id).label("scope"), _name(Grain.DAY.value, "grain"),
        day.label("bucket"), p.dimension, p.tenant_id, sa.func.sum(p.value).label("value"),
    ).group_by(p.metric, p.tenant_id, day, p.dimension)


def _practice_days_moved(shape: Shape, in_hours: sa.CTE) -> Rows:
    """A tick moves each figure (practice, metric, dimension) with a row stamped since the last
    rollup by what its recounted hours gained: in each hour, the people counted now less those
    that its rows stamped up to `since` gave, which the day's point already holds (the rollup
    that wrote it counted every row up to its as_of: see rollup.LAG). So a tick reads the rows
    of the hours it recounts, never the rest of their days."""
    h = in_hours.c
    since = moment("since")
    touched = sa.select(h.tenant_id, h.metric, h.dimension).where(
        h.tenant_id.is_not(None), h.at > since)
    hour = bucket_of(h.at, Grain.HOUR, shape.dialect)
    counted_before = sa.func.count(sa.distinct(sa.case((h.at <= since, h.who))))
    hourly = sa.select(
        h.tenant_id, h.metric, h.dimension, hour.label("hour"),
        (sa.func.count(sa.distinct(h.who)) - counted_before).label("gained"),
    ).where(sa.tuple_(h.tenant_id, h.metric, h.dimension).in_(touched)).group_by(
        h.tenant_id, h.metric, hour, h.dimension).subquery("practice_hours")
    p = hourly.c
    day = bucket_of(p.hour, Grain.DAY, shape.dialect)
    # Materialized, for the same reason as core.metrics.levels.moved: the points are looked up
    # by plain values, not by expressions of another table's columns.
    gains = sa.select(
        p.metric, scope_of(p.tenant_id).label("scope"), day.label("bucket"), p.dimension,
        p.tenant_id, sa.func.sum(p.gained).label("gained"),
    ).group_by(p.metric, p.tenant_id, day, p.dimension).cte("practice_gains").prefix_with(
        "MATERIALIZED", dialect="postgresql")
    g = gains.c
    before = sa.select(POINTS.c.value).where(
        POINTS.c.metric == g.metric, POINTS.c.scope == g.scope,
        POINTS.c.grain == Grain.DAY.value, POINTS.c.bucket == g.bucket,
        POINTS.c.dimension == g.dimension).scalar_subquery()
    return sa.select(
        g.metric, g.scope, _name(Grain.DAY.value, "grain"), g.bucket, g.dimension, g.tenant_id,
        (sa.func.coalesce(before, 0) + g.gained).label("value"),
    ).where(g.gained != 0)


def _rows_in_hours(sources: tuple[RowSource, ...], shape: Shape
                   ) -> Rows | sa.CompoundSelect[Any]:
    selects = [source(lambda at: within(at, Grain.HOUR, shape)) for source in sources]
    return selects[0] if len(selects) == 1 else sa.union_all(*selects)


def _platform() -> tuple[sa.Label[str], sa.Label[object]]:
    return sa.literal(PLATFORM).label("scope"), no_tenant()


def _name(value: str, label: str = "metric") -> sa.Label[str]:
    return sa.literal(value, sa.String()).label(label)
