"""What one rollup covers: the stretch of time since the watermark, and the buckets to recount."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.metrics.names import Grain


@dataclass(frozen=True)
class Span:
    """A half-open stretch of time [start, end)."""

    start: datetime
    end: datetime


def floor(moment: datetime, grain: Grain) -> datetime:
    moment = moment.astimezone(UTC)
    if grain is Grain.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def merged(grain: Grain, starts: Iterable[datetime]) -> tuple[Span, ...]:
    """Whole buckets, adjacent ones merged, so that a range scan reads each stretch once."""
    spans: list[Span] = []
    for start in sorted(set(starts)):
        end = start + grain.length
        if spans and spans[-1].end == start:
            spans[-1] = Span(spans[-1].start, end)
        else:
            spans.append(Span(start, end))
    return tuple(spans)


@dataclass(frozen=True)
class RollupPlan:
    dialect: str
    # The points are complete up to here (the new watermark).
    as_of: datetime
    # The previous watermark: levels move by what happened in (since, as_of]. None: a full
    # rollup, which recomputes every level from the tables.
    since: datetime | None
    # Bucket starts whose flows are recounted, each as a whole bucket (up to as_of).
    hours: tuple[datetime, ...]
    days: tuple[datetime, ...]
    computed_at: datetime

    @property
    def full(self) -> bool:
        return self.since is None

    @property
    def hour_spans(self) -> tuple[Span, ...]:
        return merged(Grain.HOUR, self.hours)

    @property
    def day_spans(self) -> tuple[Span, ...]:
        return merged(Grain.DAY, self.days)

    def bucket(self, grain: Grain) -> datetime:
        """The bucket the levels are written to: the one as_of falls in."""
        return floor(self.as_of, grain)
