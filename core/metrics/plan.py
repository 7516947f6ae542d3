"""What one rollup covers: the stretch of time since the watermark, and the buckets to recount.

Its statements depend on the plan's shape only (the database, full or not, how many stretches
of hours and days); the times are parameters. So each statement is built once per shape and
reused, tick after tick.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.metrics.names import ACTIVE_WINDOWS, Grain


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
class Shape:
    dialect: str
    full: bool
    hour_spans: int
    day_spans: int


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

    @property
    def shape(self) -> Shape:
        return Shape(self.dialect, self.full, len(self.hour_spans), len(self.day_spans))

    def parameters(self) -> dict[str, datetime]:
        """The times the statements name (see core.metrics.sql.moment)."""
        values = {"as_of": self.as_of, "computed_at": self.computed_at,
                  # The buckets the levels are written to: those as_of falls in.
                  "hour_bucket": floor(self.as_of, Grain.HOUR),
                  "day_bucket": floor(self.as_of, Grain.DAY)}
        for metric, window in ACTIVE_WINDOWS.items():
            values[f"as_of_{metric}"] = self.as_of - window
            if self.since is not None:
                values[f"since_{metric}"] = self.since - window
        if self.since is not None:
            values["since"] = self.since
        for grain, spans in ((Grain.HOUR, self.hour_spans), (Grain.DAY, self.day_spans)):
            for n, span in enumerate(spans):
                values[f"{grain.value}_start_{n}"] = span.start
                values[f"{grain.value}_end_{n}"] = span.end
        return values
