"""Activity levels: people who signed in within 1, 7 and 30 days, and practices that are open
with a member who signed in within 30 days. "Signed in" is what the events record: USER_LOGIN,
or ROLE_SWITCHED into another account of the same person. A full rollup counts the accounts by
the last sign-in each keeps (stamped with its event's time); a tick moves the levels by the events.
"""

from __future__ import annotations

import functools
from datetime import datetime

import sqlalchemy as sa

from core.events.models import EVENTS
from core.metrics.levels import ACCOUNTS, TENANTS, afresh, latest, moved, named
from core.metrics.names import (
    ACTIVE_WINDOWS,
    COUNTED_EVENT_TYPES,
    NO_DIMENSION,
    PLATFORM_ONLY_ROLES,
    PRACTICE_ACTIVITY_WINDOW,
    SIGN_IN_TYPES,
    TENANT_ROLES,
    Grain,
    Metric,
)
from core.metrics.plan import Shape
from core.metrics.sql import POINTS, moment, scope_of, type_in
from core.tenancy.models import TenantStatus


@functools.cache
def active_people(shape: Shape) -> sa.Insert:
    return _active_afresh(shape) if shape.full else _active_moved(shape)


def _sign_ins(alias: str) -> tuple[sa.FromClause, sa.ColumnElement[bool], sa.ColumnElement[str]]:
    events: sa.FromClause = EVENTS.alias(alias)
    e = events.c
    # USER_LOGIN names the account's role; ROLE_SWITCHED the role switched to.
    role: sa.ColumnElement[str] = sa.func.coalesce(e.payload["to"].as_string(),
                                                   e.payload["role"].as_string())
    is_sign_in = sa.and_(type_in(e.type, COUNTED_EVENT_TYPES), type_in(e.type, SIGN_IN_TYPES))
    return events, is_sign_in, role


def _active_afresh(shape: Shape) -> sa.Insert:
    """Counted from the accounts' last sign-in (an index holds it with the practice and role).
    An account that signed in again after as_of (within the rollup's lag) is taken at its last
    sign-in up to as_of, from the events."""
    a = ACCOUNTS.c
    as_of = moment("as_of")
    widest = max(ACTIVE_WINDOWS, key=ACTIVE_WINDOWS.__getitem__)
    last = sa.union_all(
        sa.select(a.tenant_id, a.role, a.last_signed_in_at.label("last")).where(
            a.last_signed_in_at > moment(f"as_of_{widest}"), a.last_signed_in_at <= as_of),
        sa.select(a.tenant_id, a.role, _last_sign_in(a.id, as_of).label("last")).where(
            a.last_signed_in_at > as_of),
    ).cte("last_sign_ins")
    counts = sa.select(last.c.tenant_id, last.c.role, *(
        sa.func.count().filter(last.c.last > moment(f"as_of_{metric}")).label(metric.value)
        for metric in ACTIVE_WINDOWS
    )).group_by(last.c.tenant_id, last.c.role).cte("active_counts")
    values = sa.union_all(*(
        sa.select(counts.c.tenant_id, named(metric), counts.c.role.label("dimension"),
                  counts.c[metric.value].label("value"))
        for metric in ACTIVE_WINDOWS
    )).subquery("active")
    return afresh(shape, sa.select(*values.c), list(ACTIVE_WINDOWS), TENANT_ROLES,
                  TENANT_ROLES + PLATFORM_ONLY_ROLES)


def _active_moved(shape: Shape) -> sa.Insert:
    """An account is active at t if its last sign-in up to t is within the window. Only the
    accounts that signed in during (since, as_of], or whose last sign-in slid out of a window
    meanwhile (signed in during (since - w, as_of - w]), can have changed; for each, compare its
    last sign-in up to `since` with its last up to `as_of`."""
    since, as_of = moment("since"), moment("as_of")
    events, is_sign_in, role = _sign_ins("sign_ins")
    e = events.c
    stretches = [(since, as_of), *((moment(f"since_{metric}"), moment(f"as_of_{metric}"))
                                   for metric in ACTIVE_WINDOWS)]
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
        sa.select(s.tenant_id, named(metric), s.role.label("dimension"), sa.func.sum(
            sa.case((s.after > moment(f"as_of_{metric}"), 1), else_=0)
            - sa.case((s.before > moment(f"since_{metric}"), 1), else_=0)).label("delta"),
        ).group_by(s.tenant_id, s.role)
        for metric in ACTIVE_WINDOWS
    )).subquery("moves")
    return moved(shape, sa.select(*moves.c))


def _last_sign_in(account: sa.ColumnElement[object], until: sa.ColumnElement[datetime]
                  ) -> sa.ScalarSelect[datetime]:
    events, is_sign_in, _role = _sign_ins("earlier")
    e = events.c
    return sa.select(sa.func.max(e.occurred_at)).where(
        is_sign_in, e.actor_account_id == account, e.occurred_at <= until).scalar_subquery()


# -- active practices ------------------------------------------------------------------------

@functools.cache
def active_practices(shape: Shape) -> sa.Insert:
    """A practice is active when it is open and a member signed in within 30 days. Runs after
    `active_people`, whose points of this very rollup it reads."""
    t = TENANTS.c
    if shape.full:
        # The full rollup just gave every practice a point for this day: count from those.
        p = POINTS.c
        members = sa.select(p.tenant_id, sa.func.sum(p.value).label("value")).where(
            p.metric == PRACTICE_ACTIVITY_WINDOW.value, p.grain == Grain.DAY.value,
            p.bucket == moment("day_bucket"), p.tenant_id.is_not(None),
        ).group_by(p.tenant_id).subquery("members")
        is_active = _open_with(t.status, sa.func.coalesce(members.c.value, 0))
        return afresh(shape, sa.select(
            t.id.label("tenant_id"), named(Metric.ACTIVE_PRACTICES),
            named(NO_DIMENSION, "dimension"), is_active.label("value"),
        ).select_from(TENANTS.outerjoin(members, members.c.tenant_id == t.id)),
            [Metric.ACTIVE_PRACTICES], [NO_DIMENSION], [NO_DIMENSION])
    touched = _touched_practices()
    c = touched.c
    signed_in: sa.ColumnElement[float] = sum(
        (sa.func.coalesce(latest(PRACTICE_ACTIVITY_WINDOW, c.scope, role), 0)
         for role in TENANT_ROLES), sa.literal(0))
    # A member who signed in meanwhile settles it; only the others need their 30-day figures.
    active_members: sa.ColumnElement[float] = sa.case((c.signed_in_meanwhile, 1),
                                                      else_=signed_in)
    before = sa.func.coalesce(latest(Metric.ACTIVE_PRACTICES, c.scope, NO_DIMENSION), 0)
    return moved(shape, sa.select(
        c.tenant_id, named(Metric.ACTIVE_PRACTICES), named(NO_DIMENSION, "dimension"),
        (_open_with(c.status, active_members) - before).label("delta")))


def _touched_practices() -> sa.CTE:
    """Practices whose members signed in meanwhile or 30 days before (the only sign-ins that
    can move the 30-day window), or that opened meanwhile; with their scope, materialized (see
    `core.metrics.levels.moved`)."""
    since, as_of = moment("since"), moment("as_of")
    window_start, window_end = (moment(f"since_{PRACTICE_ACTIVITY_WINDOW}"),
                                moment(f"as_of_{PRACTICE_ACTIVITY_WINDOW}"))
    events, is_sign_in, _role = _sign_ins("practice_sign_ins")
    e, t = events.c, TENANTS.c
    meanwhile = sa.and_(e.occurred_at > since, e.occurred_at <= as_of)
    ids = sa.union_all(
        sa.select(e.tenant_id, sa.case((meanwhile, 1), else_=0).label("recent")).where(
            is_sign_in, e.tenant_id.is_not(None), sa.or_(meanwhile, sa.and_(
                e.occurred_at > window_start, e.occurred_at <= window_end))),
        sa.select(t.id, sa.literal(0)).where(t.activated_at > since, t.activated_at <= as_of),
    ).subquery("touched_ids")
    return sa.select(
        t.id.label("tenant_id"), t.status, scope_of(t.id).label("scope"),
        (sa.func.max(ids.c.recent) == 1).label("signed_in_meanwhile"),
    ).join(ids, ids.c.tenant_id == t.id).group_by(t.id, t.status).cte("touched").prefix_with(
        "MATERIALIZED", dialect="postgresql")


def _open_with(status: sa.ColumnElement[str], members: sa.ColumnElement[float]
               ) -> sa.ColumnElement[int]:
    return sa.case((sa.and_(status == TenantStatus.ACTIVE.value, members > 0), 1), else_=0)
