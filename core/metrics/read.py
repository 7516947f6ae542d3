"""What `GET /api/metrics` and the dashboards show, read from `metric_points` alone.

Reads go through the caller's session, so its walls apply: a practice's session sees its own
practice's points and nothing else (not even the platform's); an admin's sees every scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.caching import PRACTICE_FIGURES, CachedRegions, CacheKey
from core.errors import ValidationFailed
from core.identity.models import Role
from core.metrics.models import MetricPoint
from core.metrics.names import ACTIVE_WINDOWS, LEVELS, ONBOARDING_ROLES, PLATFORM, Grain, Metric
from core.metrics.plan import floor
from core.metrics.rollup import as_of
from core.metrics.sql import scope_of
from core.scoping import within_tenant

PERIODS = (7, 30, 90)  # days a series may cover
# What a dashboard charts over a period, unless asked for something else.
SERIES = (Metric.SIGNUPS, Metric.ONBOARDING_COMPLETED, Metric.ONBOARDING_MEDIAN_SECONDS,
          Metric.ONBOARDING_STEPS, Metric.ONBOARDING_DONE, Metric.ACTIVE_1D, Metric.ACTIVE_7D,
          Metric.ACTIVE_30D, Metric.PEOPLE, Metric.INVITATIONS_SENT, Metric.INVITATIONS_ACCEPTED,
          Metric.INVITATIONS_EXPIRED)
PLATFORM_SERIES = (Metric.ACTIVE_PRACTICES, Metric.OUTBOX_BACKLOG, Metric.DEAD_LETTERS)


class UnknownPeriod(ValueError):
    pass


@dataclass(frozen=True)
class Query:
    """What a caller asked of the figures: a period and, optionally, one practice."""

    days: int = 30
    tenant_id: uuid.UUID | None = None

    @classmethod
    def parse(cls, days: str | None, tenant: str | None) -> Query:
        """From a query string; ValidationFailed (one message per parameter) when malformed."""
        errors: dict[str, str] = {}
        period = cls.days
        if days is not None:
            if days.strip() not in {str(p) for p in PERIODS}:
                errors["days"] = f"must be one of {', '.join(map(str, PERIODS))}"
            else:
                period = int(days)
        tenant_id = None
        if tenant is not None and tenant.strip():
            try:
                tenant_id = uuid.UUID(tenant.strip())
            except ValueError:
                errors["tenant"] = "must be a practice's id (a UUID)"
        if errors:
            raise ValidationFailed(errors)
        return cls(period, tenant_id)


@dataclass(frozen=True)
class Figures:
    """How things stand, as of the last rollup (the seed's four figures and their parts)."""

    scope: str  # "platform" or the practice's id
    as_of: datetime | None  # None: never rolled up
    age_seconds: float | None
    active_practices: int
    # Window ("1d", "7d", "30d") → role → people who signed in within it.
    active_people: dict[str, dict[str, int]]
    people_by_role: dict[str, int]
    # Of every client and therapist (each has an onboarding); None: nobody yet.
    onboarding_completion_rate: float | None
    completion_rate_by_role: dict[str, float | None]

    @property
    def active_users(self) -> int:
        """The seed's "active users": people who signed in within 30 days."""
        return sum(self.active_people.get("30d", {}).values())


@dataclass(frozen=True)
class Point:
    bucket: datetime
    value: float


@dataclass(frozen=True)
class Series:
    metric: str
    dimension: str
    points: tuple[Point, ...]  # one per day of the period, oldest first


@dataclass(frozen=True)
class Report:
    figures: Figures
    days: int
    series: tuple[Series, ...]


def report(session: Session, *, days: int = 30, tenant_id: uuid.UUID | None = None,
           metrics: Sequence[Metric] | None = None) -> Report:
    chosen = metrics or (SERIES if tenant_id else SERIES + PLATFORM_SERIES)
    return Report(figures(session, tenant_id=tenant_id), days,
                  series(session, chosen, days=days, tenant_id=tenant_id))


def figures(session: Session, *, tenant_id: uuid.UUID | None = None) -> Figures:
    latest = _latest_levels(session, tenant_id)
    done = latest.get(Metric.ONBOARDING_DONE, {})
    # Every client and therapist has an onboarding (see core.metrics.levels.onboarding).
    started = {role: count for role, count in latest.get(Metric.PEOPLE, {}).items()
               if role in ONBOARDING_ROLES}
    watermark = as_of(session)
    return Figures(
        scope=PLATFORM if tenant_id is None else str(tenant_id),
        as_of=watermark,
        age_seconds=(clock.now() - watermark).total_seconds() if watermark else None,
        active_practices=int(sum(latest.get(Metric.ACTIVE_PRACTICES, {}).values())),
        active_people={metric.value.removeprefix("active_"): _counts(latest.get(metric, {}))
                       for metric in ACTIVE_WINDOWS},
        people_by_role=_counts(latest.get(Metric.PEOPLE, {})),
        onboarding_completion_rate=_rate(sum(done.values()), sum(started.values())),
        completion_rate_by_role={role: _rate(done.get(role, 0), count)
                                 for role, count in started.items()},
    )


def series(session: Session, metrics: Iterable[Metric], *, days: int,
           tenant_id: uuid.UUID | None = None) -> tuple[Series, ...]:
    """One series per metric and dimension, a point per day up to the last rollup's. A flow
    with no point that day counted nothing; a level with none kept the day before's value."""
    if days not in PERIODS:
        raise UnknownPeriod(f"days must be one of {', '.join(map(str, PERIODS))}")
    watermark = as_of(session) or clock.now()
    last = floor(watermark, Grain.DAY)
    buckets = [last - timedelta(days=n) for n in range(days - 1, -1, -1)]
    wanted = list(metrics)
    found = _day_points(session, wanted, tenant_id, buckets[0], last)
    for key, carried in _carried_in(session, [m for m in wanted if m in LEVELS], tenant_id,
                                    buckets[0]).items():
        found.setdefault(key, {}).update(carried)
    result = []
    for (metric, dimension), values in sorted(found.items()):
        result.append(Series(metric, dimension, _filled(values, buckets, Metric(metric))))
    return tuple(result)


def _filled(values: dict[datetime, float], buckets: list[datetime], metric: Metric
            ) -> tuple[Point, ...]:
    carried = values.get(datetime.min.replace(tzinfo=buckets[0].tzinfo), 0.0)
    points = []
    for bucket in buckets:
        if bucket in values:
            carried = values[bucket]
            points.append(Point(bucket, carried))
        else:
            points.append(Point(bucket, carried if metric in LEVELS else 0.0))
    return tuple(points)


def _scope(tenant_id: uuid.UUID | None) -> sa.ColumnElement[bool]:
    return MetricPoint.scope == scope_of(sa.literal(tenant_id, sa.Uuid()))


def _latest_levels(session: Session, tenant_id: uuid.UUID | None
                   ) -> dict[str, dict[str, float]]:
    """Each level's value: its latest day point."""
    rank = sa.func.row_number().over(
        partition_by=(MetricPoint.metric, MetricPoint.dimension),
        order_by=MetricPoint.bucket.desc()).label("rank")
    ranked = sa.select(MetricPoint.metric, MetricPoint.dimension, MetricPoint.value, rank).where(
        _scope(tenant_id), MetricPoint.grain == Grain.DAY.value,
        MetricPoint.metric.in_([m.value for m in LEVELS])).subquery()
    rows = session.execute(sa.select(ranked.c.metric, ranked.c.dimension, ranked.c.value)
                           .where(ranked.c.rank == 1)).all()
    latest: dict[str, dict[str, float]] = {}
    for metric, dimension, value in rows:
        latest.setdefault(metric, {})[dimension] = value
    return latest


def _day_points(session: Session, metrics: list[Metric], tenant_id: uuid.UUID | None,
                first: datetime, last: datetime) -> dict[tuple[str, str], dict[datetime, float]]:
    rows = session.execute(sa.select(
        MetricPoint.metric, MetricPoint.dimension, MetricPoint.bucket, MetricPoint.value,
    ).where(_scope(tenant_id), MetricPoint.grain == Grain.DAY.value,
            MetricPoint.metric.in_([m.value for m in metrics]),
            MetricPoint.bucket >= first, MetricPoint.bucket <= last)).all()
    found: dict[tuple[str, str], dict[datetime, float]] = {}
    for metric, dimension, bucket, value in rows:
        found.setdefault((metric, dimension), {})[bucket] = value
    return found


def _carried_in(session: Session, levels: list[Metric], tenant_id: uuid.UUID | None,
                first: datetime) -> dict[tuple[str, str], dict[datetime, float]]:
    """Each level's value on entering the period: its latest point before the first day,
    filed under datetime.min for `_filled` to start from."""
    if not levels:
        return {}
    rank = sa.func.row_number().over(
        partition_by=(MetricPoint.metric, MetricPoint.dimension),
        order_by=MetricPoint.bucket.desc()).label("rank")
    ranked = sa.select(MetricPoint.metric, MetricPoint.dimension, MetricPoint.value, rank).where(
        _scope(tenant_id), MetricPoint.grain == Grain.DAY.value,
        MetricPoint.metric.in_([m.value for m in levels]), MetricPoint.bucket < first).subquery()
    rows = session.execute(sa.select(ranked.c.metric, ranked.c.dimension, ranked.c.value)
                           .where(ranked.c.rank == 1)).all()
    start = datetime.min.replace(tzinfo=first.tzinfo)
    return {(metric, dimension): {start: value} for metric, dimension, value in rows}


def _counts(values: dict[str, float]) -> dict[str, int]:
    return {dimension: int(value) for dimension, value in sorted(values.items())}


def _rate(part: float, whole: float) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class PracticeFigures:
    """What a therapist's dashboard shows of its own practice, as of the last rollup."""

    as_of: datetime | None
    clients: int
    active_clients: int  # signed in within 30 days
    client_completion_rate: float | None  # of the practice's clients, set-up completed

    @classmethod
    def of(cls, figures: Figures) -> PracticeFigures:
        return cls(figures.as_of, figures.people_by_role.get(Role.CLIENT.value, 0),
                   figures.active_people.get("30d", {}).get(Role.CLIENT.value, 0),
                   figures.completion_rate_by_role.get(Role.CLIENT.value))


def practice_figures(session: Session, regions: CachedRegions,
                     tenant_id: uuid.UUID) -> PracticeFigures:
    """`figures` of one practice through the cache (each rollup invalidates every practice's)."""
    stored = regions.get(*practice_figures_entry(session, tenant_id))
    return PracticeFigures(datetime.fromisoformat(stored["as_of"]) if stored["as_of"] else None,
                           stored["clients"], stored["active_clients"],
                           stored["client_completion_rate"])


def practice_figures_entry(session: Session, tenant_id: uuid.UUID
                           ) -> tuple[CacheKey, Callable[[], dict[str, Any]]]:
    def from_database() -> dict[str, Any]:
        # As the practice itself, whatever the session's context at the time: its walls apply.
        with within_tenant(session, tenant_id):
            shown = PracticeFigures.of(figures(session, tenant_id=tenant_id))
        return {"as_of": shown.as_of.isoformat() if shown.as_of else None,
                "clients": shown.clients, "active_clients": shown.active_clients,
                "client_completion_rate": shown.client_completion_rate}

    return PRACTICE_FIGURES.key(tenant_id), from_database
