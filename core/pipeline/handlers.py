"""How an effect is declared: which events trigger it, its queue, and how hard to retry it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.events.types import EventType

if TYPE_CHECKING:
    from core.config import Settings
    from core.events.models import Event
    from core.services import Services
    from core.uow import UnitOfWork

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS


@dataclass(frozen=True)
class RetryPolicy:
    """Dramatiq's exponential backoff: min_backoff * 2**n, capped at max_backoff."""

    max_retries: int
    min_backoff_ms: int
    max_backoff_ms: int
    # Longest a single attempt may run; also how long a claim on (event, handler) holds.
    time_limit_ms: int = MINUTE_MS

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    def schedule_ms(self) -> list[int]:
        """The wait before each retry, as Dramatiq computes it (without its jitter)."""
        return [
            min(self.min_backoff_ms * 2**attempt, self.max_backoff_ms)
            for attempt in range(self.max_retries)
        ]


# An e-mail is worth retrying for a few hours, not for a month.
EMAIL_RETRY = RetryPolicy(max_retries=10, min_backoff_ms=15 * SECOND_MS,
                          max_backoff_ms=HOUR_MS, time_limit_ms=2 * MINUTE_MS)
# A receiver may be down for a day; we keep trying for about that long.
WEBHOOK_RETRY = RetryPolicy(max_retries=15, min_backoff_ms=30 * SECOND_MS,
                            max_backoff_ms=4 * HOUR_MS, time_limit_ms=MINUTE_MS)
# Internal work: only the database can fail it, and it comes back within minutes.
INTERNAL_RETRY = RetryPolicy(max_retries=12, min_backoff_ms=2 * SECOND_MS,
                             max_backoff_ms=10 * MINUTE_MS, time_limit_ms=MINUTE_MS)


@dataclass
class HandlerContext:
    uow: UnitOfWork
    services: Services
    event: Event
    message_id: str
    handler: str = ""

    def commit_before_effect(self) -> None:
        """Commit what the effect wrote so far, just before its part outside the database (an
        e-mail): what that part refers to (a token in a link, the e-mail's own record) exists
        before it does, and once it is done only the run's "done" marker is left to write, one
        round trip that does not wait for the disk. That round trip is the only moment in which
        a killed worker leaves the effect done but not marked, to be repeated by its retry."""
        self.uow.commit()


def _always(_settings: Settings, _event_type: str) -> bool:
    return True


@dataclass(frozen=True)
class Handler:
    """One effect of some events. Runs as its own actor (named `name`) on `queue`."""

    name: str
    queue: str
    events: frozenset[EventType]
    run: Callable[[HandlerContext], None]
    retry: RetryPolicy = INTERNAL_RETRY
    # A further filter on settings, e.g. "only when a webhook URL is configured".
    when: Callable[[Settings, str], bool] = field(default=_always)
    # Errors that no retry can fix: the message goes straight to the dead letters.
    gives_up_on: tuple[type[Exception], ...] = ()

    def wants(self, event_type: str, settings: Settings) -> bool:
        return event_type in self.events and self.when(settings, event_type)


def handler(
    *,
    name: str,
    queue: str,
    events: set[EventType] | frozenset[EventType],
    retry: RetryPolicy = INTERNAL_RETRY,
    when: Callable[[Settings, str], bool] = _always,
    gives_up_on: tuple[type[Exception], ...] = (),
) -> Callable[[Callable[[HandlerContext], None]], Handler]:
    """Decorator: turn `def f(ctx)` into a Handler declaration."""

    def wrap(fn: Callable[[HandlerContext], None]) -> Handler:
        return Handler(name=name, queue=queue, events=frozenset(events), run=fn, retry=retry,
                       when=when, gives_up_on=gives_up_on)

    return wrap
