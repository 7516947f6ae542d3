"""Levels: how things stand (people by role, onboarding done, the outbox backlog; active people
and practices are in `core.metrics.activity`), written into the day that the rollup's `as_of`
falls in (the platform's into its hour too).

A full rollup counts each level from the tables, for every practice. An incremental one moves
each level by what happened in (since, as_of] and nothing else: new accounts, the onboarding
events (completed, reopened), sign-ins entering or leaving each window. Those are all
recorded with their time, in the transaction that made the change, so the old value plus the
change is the new value, exactly; only the levels that moved get a new point.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from core.events.models import EVENTS
from core.events.types import EventType
from core.identity.models import Account
from core.metrics.names import (
    COUNTED_EVENT_TYPES,
    NO_DIMENSION,
    ONBOARDING_ROLES,
    PLATFORM,
    PLATFORM_ONLY_ROLES,
    TENANT_ROLES,
    Grain,
    Metric,
)
from core.metrics.plan import Shape
from core.metrics.sql import (
    POINTS,
    Read,
    Rows,
    moment,
    no_tenant,
    scope_of,
    type_in,
    upsert_points,
)
from core.onboarding.models import OnboardingProgress
from core.tenancy.models import Tenant

ACCOUNTS: sa.Table = Account.__table__  # type: ignore[assignment]
PROGRESS: sa.Table = OnboardingProgress.__table__  # type: ignore[assignment]
TENANTS: sa.Table = Tenant.__table__  # type: ignore[assignment]
_ONBOARDING_EVENTS = (EventType.ONBOARDING_COMPLETED.value, EventType.ONBOARDING_REOPENED.value)


# -- people by role ------------------------------------------------------------------------

@functools.cache
def people(shape: Shape) -> sa.Insert:
    a = ACCOUNTS.c
    if not shape.full:
        return moved(shape, sa.select(
            a.tenant_id, named(Metric.PEOPLE), a.role.label("dimension"),
            sa.func.count().label("delta"),
        ).where(a.created_at > moment("since"), a.created_at <= moment("as_of"))
            .group_by(a.tenant_id, a.role))
    counted: sa.FromClause = (PEOPLE_COUNTS.rows() if PEOPLE_COUNTS.select(shape) is not None
                              else _people_counts().subquery("people"))
    return afresh(shape, sa.select(counted.c.tenant_id, named(Metric.PEOPLE),
                                  counted.c.role.label("dimension"), counted.c.n.label("value")),
                  [Metric.PEOPLE], TENANT_ROLES, TENANT_ROLES + PLATFORM_ONLY_ROLES)


@functools.cache
def _people_counts() -> Rows:
    """People per practice and role as of as_of: every account, less those created after it.
    Both counts read an index only."""
    a = ACCOUNTS.c
    every = sa.select(a.tenant_id, a.role, sa.func.count().label("n")).group_by(a.tenant_id, a.role)
    later = sa.select(a.tenant_id, a.role, (-sa.func.count()).label("n")).where(
        a.created_at > moment("as_of")).group_by(a.tenant_id, a.role)
    counted: Rows = sa.select(sa.union_all(every, later).subquery("counted"))
    return counted


# A whole-table group-by: on PostgreSQL a full rollup reads it apart, in parallel (in the INSERT
# it ran on one core and took twice the plain count of the table; alone, about as long).
PEOPLE_COUNTS = Read(
    "people_counts", (("tenant_id", sa.Uuid()), ("role", sa.String()), ("n", sa.BigInteger())),
    lambda shape: _people_counts() if shape.full and shape.dialect == "postgresql" else None)


# -- onboarding: how many have completed it --------------------------------------------------
# Every client and therapist account starts its onboarding when it is created (in the same
# transaction: core.identity.service._new_account), so the people who have one are the people
# of those roles, and only those who have not finished it need counting.

@functools.cache
def onboarding(shape: Shape) -> sa.Insert:
    """People whose onboarding is complete. Runs after `people`, whose points it reads."""
    if not shape.full:
        moves = _onboarding_moves(after=moment("since"), until=moment("as_of"), sign=1
                                  ).subquery("moves")
        return moved(shape, sa.select(moves.c.tenant_id, named(Metric.ONBOARDING_DONE),
                                     moves.c.role.label("dimension"), moves.c.delta))
    a, p, points = ACCOUNTS.c, PROGRESS.c, POINTS.c
    # Done as of as_of: the people then, less those not done now (a partial index holds just
    # them), wound back by what happened since: accounts created, completions, reopenings.
    values = sa.union_all(
        sa.select(points.tenant_id, points.dimension, points.value).where(
            points.metric == Metric.PEOPLE.value, points.grain == Grain.DAY.value,
            points.bucket == moment("day_bucket"), points.tenant_id.is_not(None),
            points.dimension.in_(ONBOARDING_ROLES)),
        sa.select(a.tenant_id, a.role, sa.func.count()).where(
            a.created_at > moment("as_of"), a.tenant_id.is_not(None)).group_by(a.tenant_id, a.role),
        sa.select(p.tenant_id, p.role, -sa.func.count()).where(p.completed_at.is_(None))
        .group_by(p.tenant_id, p.role),
        _onboarding_moves(after=moment("as_of"), until=None, sign=-1),
    ).subquery("onboarding_done")
    v = values.c
    return afresh(shape, sa.select(v.tenant_id, named(Metric.ONBOARDING_DONE), v.dimension,
                                  v.value),
                  [Metric.ONBOARDING_DONE], ONBOARDING_ROLES, ONBOARDING_ROLES)


def _onboarding_moves(*, after: sa.ColumnElement[datetime],
                      until: sa.ColumnElement[datetime] | None, sign: int) -> Rows:
    """(tenant_id, role, delta) per onboarding event in (after, until]: a completion adds one
    done, a reopening takes one away; times `sign`."""
    e, a = EVENTS.c, ACCOUNTS.c
    reopened = e.type == EventType.ONBOARDING_REOPENED.value
    when = [e.occurred_at > after] + ([e.occurred_at <= until] if until is not None else [])
    return sa.select(
        a.tenant_id, a.role, (sa.case((reopened, -1), else_=1) * sign).label("delta"),
    ).select_from(EVENTS.join(ACCOUNTS, a.id == e.actor_account_id)).where(
        type_in(e.type, COUNTED_EVENT_TYPES), type_in(e.type, _ONBOARDING_EVENTS), *when)


# -- outbox backlog --------------------------------------------------------------------------

@functools.cache
def outbox_backlog(shape: Shape) -> sa.Insert:
    """Events not yet handed to the workers, counted now (a partial index holds just those)."""
    e = EVENTS.c
    waiting = sa.select(no_tenant(), named(Metric.OUTBOX_BACKLOG),
                        named(NO_DIMENSION, "dimension"), sa.func.count().label("value")
                        ).where(e.dispatched_at.is_(None))
    return afresh(shape, waiting, [Metric.OUTBOX_BACKLOG], [], [NO_DIMENSION])


# -- writing -------------------------------------------------------------------------------

def moved(shape: Shape, deltas: Rows) -> sa.Insert:
    """Move levels by `deltas` (tenant_id, metric, dimension, delta; rows of one key add up):
    each practice's, and the platform's by the sum of all. Unmoved levels get no point."""
    d = deltas.subquery("deltas")
    summed = sa.select(d.c.tenant_id, d.c.metric, d.c.dimension,
                       sa.func.sum(d.c.delta).label("delta")
                       ).group_by(d.c.tenant_id, d.c.metric, d.c.dimension).cte("summed")
    s = summed.c
    # Materialized: row-level security keeps PostgreSQL from looking points up by an expression
    # of another table's columns (uuid to text is not leakproof), but not by a plain value.
    per_scope = sa.union_all(
        sa.select(s.metric, scope_of(s.tenant_id).label("scope"), s.dimension, s.tenant_id,
                  s.delta).where(s.tenant_id.is_not(None)),
        sa.select(s.metric, sa.literal(PLATFORM).label("scope"), s.dimension,
                  no_tenant(), sa.func.sum(s.delta).label("delta"),
                  ).group_by(s.metric, s.dimension),
    ).cte("moved").prefix_with("MATERIALIZED", dialect="postgresql")
    m = per_scope.c
    value = sa.func.coalesce(latest(m.metric, m.scope, m.dimension), 0) + m.delta
    return _written(shape, sa.select(m.metric, m.scope, m.dimension, m.tenant_id,
                                    value.label("value")).where(m.delta != 0))


def afresh(shape: Shape, values: Rows, metrics: Sequence[Metric],
           tenant_dimensions: Sequence[str], platform_dimensions: Sequence[str]) -> sa.Insert:
    """Set levels to `values` (tenant_id, metric, dimension, value; rows of one key add up), for
    every practice and dimension, zeros included: nothing is left standing from before."""
    v = values.subquery("values")
    summed = sa.select(v.c.tenant_id, v.c.metric, v.c.dimension,
                       sa.func.sum(v.c.value).label("value")
                       ).group_by(v.c.tenant_id, v.c.metric, v.c.dimension).cte("summed")
    s = summed.c
    platform = sa.select(s.metric, s.dimension, sa.func.sum(s.value).label("value")
                         ).group_by(s.metric, s.dimension).subquery("platform_sums")
    keys = _keys(metrics, platform_dimensions).subquery("platform_keys")
    rows = [sa.select(keys.c.metric, sa.literal(PLATFORM).label("scope"), keys.c.dimension,
                      no_tenant(),
                      sa.func.coalesce(platform.c.value, 0).label("value"),
                      ).select_from(keys.outerjoin(platform, sa.and_(
                          platform.c.metric == keys.c.metric,
                          platform.c.dimension == keys.c.dimension)))]
    if tenant_dimensions:
        kinds = _keys(metrics, tenant_dimensions).subquery("tenant_keys")
        t = TENANTS.c
        rows.append(sa.select(
            kinds.c.metric, scope_of(t.id).label("scope"), kinds.c.dimension,
            t.id.label("tenant_id"), sa.func.coalesce(s.value, 0).label("value"),
        ).select_from(TENANTS.join(kinds, sa.true()).outerjoin(summed, sa.and_(
            s.tenant_id == t.id, s.metric == kinds.c.metric,
            s.dimension == kinds.c.dimension))))
    return _written(shape, sa.union_all(*rows))


def _written(shape: Shape, values: Rows | sa.CompoundSelect[Any]) -> sa.Insert:
    """Each (metric, scope, dimension, tenant_id, value) into the day of as_of, and the
    platform's into its hour as well (a practice's levels are read by the day)."""
    v = values.cte("levels").prefix_with("MATERIALIZED", dialect="postgresql")
    grains = sa.union_all(*(
        sa.select(named(grain.value, "grain"), moment(f"{grain.value}_bucket").label("bucket"))
        for grain in Grain)).subquery("grains")
    return upsert_points(shape.dialect, sa.select(
        v.c.metric, v.c.scope, grains.c.grain, grains.c.bucket, v.c.dimension, v.c.tenant_id,
        v.c.value).select_from(v.join(grains, sa.or_(
            v.c.tenant_id.is_(None), grains.c.grain == Grain.DAY.value))))


def latest(metric: object, scope: object, dimension: object) -> sa.ScalarSelect[float]:
    """A level's value as of the last rollup that moved it: its latest day point."""
    earlier = POINTS.alias("earlier")
    e = earlier.c
    return sa.select(e.value).where(
        e.metric == metric, e.scope == scope, e.grain == Grain.DAY.value, e.dimension == dimension,
    ).order_by(e.bucket.desc()).limit(1).scalar_subquery()


def _keys(metrics: Sequence[Metric], dimensions: Sequence[str]) -> sa.CompoundSelect[Any]:
    return sa.union_all(*(sa.select(named(metric), named(dimension, "dimension"))
                          for metric in metrics for dimension in dimensions))


def named(value: str, label: str = "metric") -> sa.Label[str]:
    return sa.literal(value, sa.String()).label(label)
