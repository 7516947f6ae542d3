"""The outbox side of the pipeline: what was committed but not yet handed to the workers."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.db import id_in
from core.events.models import EVENTS, Event

if TYPE_CHECKING:
    from core.uow import UnitOfWork

RELAY_BATCH = 500
# The fast path normally publishes within milliseconds of commit; the relay leaves it that long.
RELAY_GRACE = timedelta(seconds=5)


class PublishError(Exception):
    """The broker did not take the messages; the events stay in the outbox."""


class PublishDeferred(PublishError):
    """Nothing in this process can run the messages (a CLI in embedded mode): leave the events
    in the outbox for the relay of the process that can."""


class EventPublisher(Protocol):
    """Hands committed events to the workers; raises PublishError when the broker is away."""

    def publish(self, events: Sequence[Event]) -> None: ...

    def dispatched(self, events: Sequence[Event]) -> None:
        """The events are marked dispatched and that is committed: nudge the audit writer.
        (Sooner, and it would queue behind the very row locks of that update.) Never raises."""
        ...


class FastPath(Protocol):
    """Takes events the moment their transaction has committed, to publish them soon."""

    def hand_over(self, events: Sequence[Event]) -> None:
        """Never raises: whatever it cannot publish stays in the outbox for the relay."""
        ...


def mark_dispatched(session: Session, event_ids: Iterable[uuid.UUID]) -> None:
    ids = list(event_ids)
    if ids:
        session.execute(  # on the table: the ORM's bulk-update machinery costs more than the SQL
            sa.update(EVENTS)
            .where(id_in(EVENTS.c.id, ids, session.get_bind().dialect.name),
                   EVENTS.c.dispatched_at.is_(None))
            .values(dispatched_at=clock.now())
        )


def relay(uow: UnitOfWork, publisher: EventPublisher, *, limit: int = RELAY_BATCH) -> int:
    """Publish one batch of events the fast path missed; returns how many were sent.

    `FOR UPDATE SKIP LOCKED` lets two relays run at once without publishing the same event twice.
    If publishing fails the transaction rolls back and the events wait for the next round.
    """
    events: Sequence[Event] = uow.session.execute(
        sa.select(Event)
        .where(Event.dispatched_at.is_(None), Event.occurred_at < clock.now() - RELAY_GRACE)
        .order_by(Event.occurred_at)
        .limit(limit)
        # NO KEY UPDATE, as the row is only marked: a handler's claim (a key-share lock
        # through its foreign key) does not hide the event from the relay.
        .with_for_update(skip_locked=True, key_share=True)
    ).scalars().all()
    if not events:
        uow.rollback()
        return 0
    publisher.publish(events)
    now = clock.now()
    for event in events:
        event.attempts += 1
        event.dispatched_at = now
    uow.commit()
    publisher.dispatched(events)
    return len(events)


@dataclass(frozen=True)
class Backlog:
    undispatched: int
    oldest_age_seconds: float | None
    unaudited: int


def backlog(session: Session) -> Backlog:
    undispatched, oldest = session.execute(
        sa.select(sa.func.count(), sa.func.min(Event.occurred_at)).where(
            Event.dispatched_at.is_(None)
        )
    ).one()
    unaudited = session.execute(
        sa.select(sa.func.count()).where(Event.audited_at.is_(None))
    ).scalar_one()
    age = None
    if oldest is not None:
        if not isinstance(oldest, datetime):  # SQLite hands aggregates back as text
            oldest = datetime.fromisoformat(str(oldest))
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = max(0.0, (clock.now() - oldest).total_seconds())
    return Backlog(undispatched=undispatched, oldest_age_seconds=age, unaudited=unaudited)
