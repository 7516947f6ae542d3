"""Levels: how things stand (people by role, active people, onboarding done, active practices,
the outbox backlog), written into the day that the rollup's `as_of` falls in (the platform's
into its hour too).

A full rollup counts each level from the tables, for every practice. An incremental one moves
each level by what happened in (since, as_of] and nothing else: new accounts, the onboarding
events (completed, reopened), sign-ins entering or leaving each window. Those are all
recorded with their time, in the transaction that made the change, so the old value plus the
change is the new value, exactly; only the levels that moved get a new point.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from core.events.models import EVENTS
from core.events.types import EventType
from core.identity.models import Account
from core.metrics.names import (
    ACTIVE_WINDOWS,
    COUNTED_EVENT_TYPES,
    NO_DIMENSION,
    ONBOARDING_ROLES,
    PLATFORM,
    PLATFORM_ONLY_ROLES,
    PRACTICE_ACTIVITY_WINDOW,
    SIGN_IN_TYPES,
    TENANT_ROLES,
    Grain,
    Metric,
)
from core.metrics.plan import RollupPlan
from core.metrics.sql import POINTS, Rows, at, no_tenant, scope_of, type_in, upsert_points
from core.onboarding.models import OnboardingProgress
from core.tenancy.models import Tenant, TenantStatus

ACCOUNTS: sa.Table = Account.__table__  # type: ignore[assignment]
PROGRESS: sa.Table = OnboardingProgress.__table__  # type: ignore[assignment]
TENANTS: sa.Table = Tenant.__table__  # type: ignore[assignment]
_ONBOARDING_EVENTS = (EventType.ONBOARDING_COMPLETED.value, EventType.ONBOARDING_REOPENED.value)


# -- people by role ------------------------------------------------------------------------

def people(plan: RollupPlan) -> sa.Insert:
    a = ACCOUNTS.c
    if plan.since is not None:
        return _moved(plan, sa.select(
            a.tenant_id, _name(Metric.PEOPLE), a.role.label("dimension"),
            sa.func.count().label("delta"),
        ).where(a.created_at > plan.since, a.created_at <= plan.as_of)
            .group_by(a.tenant_id, a.role))
    # Every account, less those created after as_of: both counts read an index only.
    every = sa.select(a.tenant_id, a.role, sa.func.count().label("n")).group_by(a.tenant_id, a.role)
    later = sa.select(a.tenant_id, a.role, (-sa.func.count()).label("n")).where(
        a.created_at > plan.as_of).group_by(a.tenant_id, a.role)
    counted = sa.union_all(every, later).subquery("people")
    return _afresh(plan, sa.select(counted.c.tenant_id, _name(Metric.PEOPLE),
                                   counted.c.role.label("dimension"), counted.c.n.label("value")),
                   [Metric.PEOPLE], TENANT_ROLES, TENANT_ROLES + PLATFORM_ONLY_ROLES)


# -- onboarding: how many have completed it --------------------------------------------------
# Every client and therapist account starts its onboarding when it is created (in the same
# transaction: core.identity.service._new_account), so the people who have one are the people
# of those roles, and only those who have not finished it need counting.

def onboarding(plan: RollupPlan) -> sa.Insert:
    """People whose onboarding is complete. Runs after `people`, whose points it reads."""
    if plan.since is not None:
        moves = _onboarding_moves(after=plan.since, until=plan.as_of, sign=1).subquery("moves")
        return _moved(plan, sa.select(moves.c.tenant_id, _name(Metric.ONBOARDING_DONE),
                                      moves.c.role.label("dimension"), moves.c.delta))
    a, p, points = ACCOUNTS.c, PROGRESS.c, POINTS.c
    # Done as of as_of: the people then, less those not done now (a partial index holds just
    # them), wound back by what happened since: accounts created, completions, reopenings.
    values = sa.union_all(
        sa.select(points.tenant_id, points.dimension, points.value).where(
            points.metric == Metric.PEOPLE.value, points.grain == Grain.DAY.value,
            points.bucket == plan.bucket(Grain.DAY), points.tenant_id.is_not(None),
            points.dimension.in_(ONBOARDING_ROLES)),
        sa.select(a.tenant_id, a.role, sa.func.count()).where(
            a.created_at > plan.as_of, a.tenant_id.is_not(None)).group_by(a.tenant_id, a.role),
        sa.select(p.tenant_id, p.role, -sa.func.count()).where(p.completed_at.is_(None))
        .group_by(p.tenant_id, p.role),
        _onboarding_moves(after=plan.as_of, until=None, sign=-1),
    ).subquery("onboarding_done")
    v = values.c
    return _afresh(plan, sa.select(v.tenant_id, _name(Metric.ONBOARDING_DONE),
                                   v.dimension, v.value),
                   [Metric.ONBOARDING_DONE], ONBOARDING_ROLES, ONBOARDING_ROLES)


def _onboarding_moves(*, after: datetime, until: datetime | None, sign: int) -> Rows:
    """(tenant_id, role, delta) per onboarding event in (after, until]: a completion adds one
    done, a reopening takes one away; times `sign`."""
    e, a = EVENTS.c, ACCOUNTS.c
    reopened = e.type == EventType.ONBOARDING_REOPENED.value
    when = [e.occurred_at > after] + ([e.occurred_at <= until] if until is not None else [])
    return sa.select(
        a.tenant_id, a.role, (sa.case((reopened, -1), else_=1) * sign).label("delta"),
    ).select_from(EVENTS.join(ACCOUNTS, a.id == e.actor_account_id)).where(
        type_in(e.type, COUNTED_EVENT_TYPES), type_in(e.type, _ONBOARDING_EVENTS), *when)


# -- active people: signed in within 1, 7, 30 days -------------------------------------------

def active_people(plan: RollupPlan) -> sa.Insert:
    return _active_moved(plan) if plan.since is not None else _active_afresh(plan)


def _sign_ins(alias: str) -> tuple[sa.FromClause, sa.ColumnElement[bool], sa.ColumnElement[str]]:
    events: sa.FromClause = EVENTS.alias(alias)
    e = events.c
    # USER_LOGIN names the account's role; ROLE_SWITCHED the role switched to.
    role: sa.ColumnElement[str] = sa.func.coalesce(e.payload["to"].as_string(),
                                                   e.payload["role"].as_string())
    is_sign_in = sa.and_(type_in(e.type, COUNTED_EVENT_TYPES), type_in(e.type, SIGN_IN_TYPES))
    return events, is_sign_in, role


def _active_afresh(plan: RollupPlan) -> sa.Insert:
    events, is_sign_in, role = _sign_ins("sign_ins")
    e = events.c
    widest = max(ACTIVE_WINDOWS.values())
    last = sa.select(
        e.actor_account_id, e.tenant_id, sa.func.max(role).label("role"),
        sa.func.max(e.occurred_at).label("last"),
    ).where(is_sign_in, e.occurred_at > plan.as_of - widest, e.occurred_at <= plan.as_of
            ).group_by(e.actor_account_id, e.tenant_id).cte("last_sign_ins")
    counts = sa.select(last.c.tenant_id, last.c.role, *(
        sa.func.sum(sa.case((last.c.last > plan.as_of - window, 1), else_=0)).label(metric.value)
        for metric, window in ACTIVE_WINDOWS.items()
    )).group_by(last.c.tenant_id, last.c.role).cte("active_counts")
    values = sa.union_all(*(
        sa.select(counts.c.tenant_id, _name(metric), counts.c.role.label("dimension"),
                  counts.c[metric.value].label("value"))
        for metric in ACTIVE_WINDOWS
    )).subquery("active")
    return _afresh(plan, sa.select(*values.c), list(ACTIVE_WINDOWS), TENANT_ROLES,
                   TENANT_ROLES + PLATFORM_ONLY_ROLES)


def _active_moved(plan: RollupPlan) -> sa.Insert:
    """An account is active at t if its last sign-in up to t is within the window. Only the
    accounts that signed in during (since, as_of], or whose last sign-in slid out of a window
    meanwhile (signed in during (since - w, as_of - w]), can have changed; for each, compare its
    last sign-in up to `since` with its last up to `as_of`."""
    assert plan.since is not None
    since, as_of = plan.since, plan.as_of
    events, is_sign_in, role = _sign_ins("sign_ins")
    e = events.c
    stretches = [(since, as_of), *((since - w, as_of - w) for w in ACTIVE_WINDOWS.values())]
    candidates = sa.select(e.actor_account_id.label("account"), e.tenant_id,
                           role.label("role")).where(
        is_sign_in, sa.or_(*(sa.and_(e.occurred_at > low, e.occurred_at <= high)
                             for low, high in stretches)),
    ).distinct().cte("candidates")
    c = candidates.c
    states = sa.select(c.tenant_id, c.role, _last_sign_in(c.account, since).label("before"),
                       _last_sign_in(c.account, as_of).label("after")).cte("states")
    s = states.c
    moves = sa.union_all(*(
        sa.select(s.tenant_id, _name(metric), s.role.label("dimension"), sa.func.sum(
            sa.case((s.after > as_of - window, 1), else_=0)
            - sa.case((s.before > since - window, 1), else_=0)).label("delta"),
        ).group_by(s.tenant_id, s.role)
        for metric, window in ACTIVE_WINDOWS.items()
    )).subquery("moves")
    return _moved(plan, sa.select(*moves.c))


def _last_sign_in(account: sa.ColumnElement[object], until: datetime) -> sa.ScalarSelect[datetime]:
    events, is_sign_in, _role = _sign_ins("earlier")
    e = events.c
    return sa.select(sa.func.max(e.occurred_at)).where(
        is_sign_in, e.actor_account_id == account, e.occurred_at <= until).scalar_subquery()


# -- active practices ------------------------------------------------------------------------

def active_practices(plan: RollupPlan) -> sa.Insert:
    """A practice is active when it is open and a member signed in within 30 days. Runs after
    `active_people`, whose points of this very rollup it reads."""
    t = TENANTS.c
    if plan.since is None:
        # The full rollup just gave every practice a point for this day: count from those.
        p = POINTS.c
        members = sa.select(p.tenant_id, sa.func.sum(p.value).label("value")).where(
            p.metric == PRACTICE_ACTIVITY_WINDOW.value, p.grain == Grain.DAY.value,
            p.bucket == plan.bucket(Grain.DAY), p.tenant_id.is_not(None),
        ).group_by(p.tenant_id).subquery("members")
        is_active = _open_with(t.status, sa.func.coalesce(members.c.value, 0))
        return _afresh(plan, sa.select(
            t.id.label("tenant_id"), _name(Metric.ACTIVE_PRACTICES),
            _name(NO_DIMENSION, "dimension"), is_active.label("value"),
        ).select_from(TENANTS.outerjoin(members, members.c.tenant_id == t.id)),
            [Metric.ACTIVE_PRACTICES], [NO_DIMENSION], [NO_DIMENSION])
    touched = _touched_practices(plan)
    c = touched.c
    signed_in: sa.ColumnElement[float] = sum(
        (sa.func.coalesce(_latest(PRACTICE_ACTIVITY_WINDOW, c.scope, role), 0)
         for role in TENANT_ROLES), sa.literal(0))
    before = sa.func.coalesce(_latest(Metric.ACTIVE_PRACTICES, c.scope, NO_DIMENSION), 0)
    return _moved(plan, sa.select(
        c.tenant_id, _name(Metric.ACTIVE_PRACTICES), _name(NO_DIMENSION, "dimension"),
        (_open_with(c.status, signed_in) - before).label("delta")))


def _touched_practices(plan: RollupPlan) -> sa.CTE:
    """Practices whose members signed in meanwhile or 30 days before (the only sign-ins that
    can move the 30-day window), or that opened meanwhile; with their scope. Materialized: row-
    level security keeps PostgreSQL from looking points up by an expression of another table's
    columns (uuid to text is not leakproof), not by a plain value."""
    assert plan.since is not None
    since, as_of = plan.since, plan.as_of
    window = ACTIVE_WINDOWS[PRACTICE_ACTIVITY_WINDOW]
    events, is_sign_in, _role = _sign_ins("practice_sign_ins")
    e, t = events.c, TENANTS.c
    ids = sa.union(
        sa.select(e.tenant_id).where(is_sign_in, e.tenant_id.is_not(None), sa.or_(
            sa.and_(e.occurred_at > since, e.occurred_at <= as_of),
            sa.and_(e.occurred_at > since - window, e.occurred_at <= as_of - window))),
        sa.select(t.id).where(t.activated_at > since, t.activated_at <= as_of),
    ).subquery("touched_ids")
    return sa.select(t.id.label("tenant_id"), t.status, scope_of(t.id).label("scope")).join(
        ids, ids.c.tenant_id == t.id).cte("touched").prefix_with("MATERIALIZED",
                                                                 dialect="postgresql")


def _open_with(status: sa.ColumnElement[str], members: sa.ColumnElement[float]
               ) -> sa.ColumnElement[int]:
    return sa.case((sa.and_(status == TenantStatus.ACTIVE.value, members > 0), 1), else_=0)


# -- outbox backlog --------------------------------------------------------------------------

def outbox_backlog(plan: RollupPlan) -> sa.Insert:
    """Events not yet handed to the workers, counted now (a partial index holds just those)."""
    e = EVENTS.c
    waiting = sa.select(no_tenant(), _name(Metric.OUTBOX_BACKLOG),
                        _name(NO_DIMENSION, "dimension"), sa.func.count().label("value")
                        ).where(e.dispatched_at.is_(None))
    return _afresh(plan, waiting, [Metric.OUTBOX_BACKLOG], [], [NO_DIMENSION])


# -- writing -------------------------------------------------------------------------------

def _moved(plan: RollupPlan, deltas: Rows) -> sa.Insert:
    """Move levels by `deltas` (tenant_id, metric, dimension, delta; rows of one key add up):
    each practice's, and the platform's by the sum of all. Unmoved levels get no point."""
    d = deltas.subquery("deltas")
    summed = sa.select(d.c.tenant_id, d.c.metric, d.c.dimension,
                       sa.func.sum(d.c.delta).label("delta")
                       ).group_by(d.c.tenant_id, d.c.metric, d.c.dimension).cte("summed")
    s = summed.c
    moved = sa.union_all(
        sa.select(s.metric, scope_of(s.tenant_id).label("scope"), s.dimension, s.tenant_id,
                  s.delta).where(s.tenant_id.is_not(None)),
        sa.select(s.metric, sa.literal(PLATFORM).label("scope"), s.dimension,
                  no_tenant(), sa.func.sum(s.delta).label("delta"),
                  ).group_by(s.metric, s.dimension),
    ).cte("moved").prefix_with("MATERIALIZED", dialect="postgresql")  # see _touched_practices
    m = moved.c
    value = sa.func.coalesce(_latest(m.metric, m.scope, m.dimension), 0) + m.delta
    return _written(plan, sa.select(m.metric, m.scope, m.dimension, m.tenant_id,
                                    value.label("value")).where(m.delta != 0))


def _afresh(plan: RollupPlan, values: Rows, metrics: Sequence[Metric],
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
    return _written(plan, sa.union_all(*rows))


def _written(plan: RollupPlan, values: Rows | sa.CompoundSelect[Any]) -> sa.Insert:
    """Each (metric, scope, dimension, tenant_id, value) into the day of as_of, and the
    platform's into its hour as well (a practice's levels are read by the day)."""
    v = values.cte("levels").prefix_with("MATERIALIZED", dialect="postgresql")
    grains = sa.union_all(*(
        sa.select(_name(grain.value, "grain"), at(plan.bucket(grain)).label("bucket"))
        for grain in Grain)).subquery("grains")
    return upsert_points(plan.dialect, sa.select(
        v.c.metric, v.c.scope, grains.c.grain, grains.c.bucket, v.c.dimension, v.c.tenant_id,
        v.c.value).select_from(v.join(grains, sa.or_(
            v.c.tenant_id.is_(None), grains.c.grain == Grain.DAY.value))), plan.computed_at)


def _latest(metric: object, scope: object, dimension: object) -> sa.ScalarSelect[float]:
    """A level's value as of the last rollup that moved it: its latest day point."""
    earlier = POINTS.alias("earlier")
    e = earlier.c
    return sa.select(e.value).where(
        e.metric == metric, e.scope == scope, e.grain == Grain.DAY.value, e.dimension == dimension,
    ).order_by(e.bucket.desc()).limit(1).scalar_subquery()


def _keys(metrics: Sequence[Metric], dimensions: Sequence[str]) -> sa.CompoundSelect[Any]:
    return sa.union_all(*(sa.select(_name(metric), _name(dimension, "dimension"))
                          for metric in metrics for dimension in dimensions))


def _name(value: str, label: str = "metric") -> sa.Label[str]:
    return sa.literal(value, sa.String()).label(label)
