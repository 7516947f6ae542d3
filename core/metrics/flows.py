"""Flows: what happened within an hour or a day, recounted bucket by bucket from the rows'
own timestamps. A recount replaces the bucket's figures, so it can run any number of times.

Each function returns one statement: it reads the rows of the plan's days (the hours are
among them), counts them per practice, bucket and dimension, adds the practices up into the
platform's figures and UPSERTs the lot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from core.events.models import EVENTS, DeadLetter
from core.events.types import EventType
from core.identity.models import Account, Invitation
from core.metrics.names import COUNTED_EVENT_TYPES, FLOW_EVENT_METRICS, NO_DIMENSION, Grain, Metric
from core.metrics.plan import RollupPlan
from core.metrics.sql import (
    Rows,
    bucket_of,
    no_tenant,
    scope_of,
    scoped,
    seconds_between,
    type_in,
    upsert_points,
    within,
)
from core.onboarding.models import OnboardingProgress

# The rows a flow counts: (tenant_id, at, metric, dimension, who), filtered by time on `at`'s
# own column so that its index serves the filter.
RowSource = Callable[[Callable[[sa.ColumnElement[object]], sa.ColumnElement[bool]]], Rows]

ACCOUNTS: sa.Table = Account.__table__  # type: ignore[assignment]
INVITATIONS: sa.Table = Invitation.__table__  # type: ignore[assignment]
DEAD_LETTERS: sa.Table = DeadLetter.__table__  # type: ignore[assignment]
PROGRESS: sa.Table = OnboardingProgress.__table__  # type: ignore[assignment]
_INVITATION_EVENTS = (EventType.INVITATION_SENT.value, EventType.INVITATION_ACCEPTED.value)


def signups(plan: RollupPlan) -> sa.Insert:
    def rows(when: Callable[..., sa.ColumnElement[bool]]) -> Rows:
        a = ACCOUNTS.c
        return sa.select(a.tenant_id, a.created_at.label("at"), _name(Metric.SIGNUPS),
                         a.role.label("dimension"), a.id.label("who")).where(when(a.created_at))

    return _counted(plan, rows)


def event_flows(plan: RollupPlan) -> sa.Insert:
    """Onboarding starts, stage completions (the funnel) and completions, by role; invitations
    sent and accepted. A person counts once per bucket, however often they redid a stage."""

    def rows(when: Callable[..., sa.ColumnElement[bool]]) -> Rows:
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

    return _counted(plan, rows)


def expired_invitations(plan: RollupPlan) -> sa.Insert:
    """Invitations whose time ran out unused, in the bucket where it ran out."""

    def rows(when: Callable[..., sa.ColumnElement[bool]]) -> Rows:
        i = INVITATIONS.c
        unused = sa.and_(i.accepted_at.is_(None),
                         sa.or_(i.revoked_at.is_(None), i.revoked_at > i.expires_at))
        return sa.select(i.tenant_id, i.expires_at.label("at"),
                         _name(Metric.INVITATIONS_EXPIRED), _name(NO_DIMENSION, "dimension"),
                         i.id.label("who")).where(unused, when(i.expires_at))

    return _counted(plan, rows)


def dead_letters(plan: RollupPlan) -> sa.Insert:
    """Messages that ran out of retries, by queue: a platform figure (no practice owns them)."""

    def rows(when: Callable[..., sa.ColumnElement[bool]]) -> Rows:
        d = DEAD_LETTERS.c
        return sa.select(no_tenant(), d.failed_at.label("at"),
                         _name(Metric.DEAD_LETTERS), d.queue.label("dimension"),
                         d.id.label("who")).where(when(d.failed_at))

    return _counted(plan, rows)


def onboarding_medians(plan: RollupPlan) -> sa.Insert:
    """Median time from starting onboarding to completing it, of the completions in each bucket.
    Medians do not add up: the platform's is taken over all its completions."""
    e, p = EVENTS.c, PROGRESS.c
    completions = sa.select(
        e.tenant_id, e.occurred_at.label("at"), p.role.label("dimension"),
        seconds_between(e.occurred_at, p.started_at, plan.dialect).label("seconds"),
    ).select_from(EVENTS.join(PROGRESS, p.account_id == e.actor_account_id)).where(
        type_in(e.type, COUNTED_EVENT_TYPES), e.type == EventType.ONBOARDING_COMPLETED.value,
        within(e.occurred_at, plan.day_spans, plan.as_of),
    ).cte("completions")
    graded = _graded(plan, completions, "seconds").cte("graded")
    g = graded.c
    by_scope = sa.union_all(
        sa.select(scope_of(g.tenant_id).label("scope"), g.tenant_id, g.grain, g.bucket,
                  g.dimension, g.seconds).where(g.tenant_id.is_not(None)),
        sa.select(sa.literal("platform").label("scope"), no_tenant(), g.grain,
                  g.bucket, g.dimension, g.seconds),
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
    return upsert_points(plan.dialect, medians, plan.computed_at)


def _counted(plan: RollupPlan, source: RowSource) -> sa.Insert:
    rows = source(lambda at: within(at, plan.day_spans, plan.as_of)).cte("flow_rows")
    graded = _graded(plan, rows, None).cte("counted")
    return upsert_points(plan.dialect, scoped(graded), plan.computed_at)


def _graded(plan: RollupPlan, rows: sa.CTE, carry: str | None) -> sa.CompoundSelect[Any]:
    """The rows twice: per hour (only those in the plan's hours) and per day. With `carry`,
    that column is passed along row by row; without, rows are counted (distinct `who`)."""
    c = rows.c
    branches = []
    for grain, where in ((Grain.HOUR, within(c.at, plan.hour_spans, plan.as_of)),
                         (Grain.DAY, sa.true())):
        bucket = bucket_of(c.at, grain, plan.dialect)
        keys = [c.tenant_id, bucket.label("bucket"), c.dimension]
        if carry is not None:
            branches.append(sa.select(*keys, _name(grain.value, "grain"), c[carry]).where(where))
            continue
        branches.append(
            sa.select(*keys, c.metric, _name(grain.value, "grain"),
                      sa.func.count(sa.distinct(c.who)).label("value"))
            .where(where).group_by(c.tenant_id, bucket, c.metric, c.dimension))
    return sa.union_all(*branches)


def _name(value: str, label: str = "metric") -> sa.Label[str]:
    return sa.literal(value, sa.String()).label(label)
