"""Dead letters: what ran out of retries, for an operator to read and replay."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.events.models import DeadLetter, HandlerRun


def waiting(session: Session, *, limit: int = 200) -> Sequence[DeadLetter]:
    return session.execute(
        sa.select(DeadLetter).where(DeadLetter.retried_at.is_(None))
        .order_by(DeadLetter.failed_at.desc()).limit(limit)
    ).scalars().all()


def find(session: Session, ids: Sequence[int]) -> Sequence[DeadLetter]:
    return session.execute(
        sa.select(DeadLetter).where(DeadLetter.id.in_(ids), DeadLetter.retried_at.is_(None))
    ).scalars().all()


def prepare_replay(session: Session, letter: DeadLetter) -> dict[str, object]:
    """Mark a dead letter retried and give its effect a fresh attempt budget.

    Returns the message to enqueue again, with Dramatiq's retry count reset. The caller commits
    after the broker took it, so a failed enqueue leaves the dead letter waiting.
    """
    if letter.event_id is not None:
        session.execute(
            sa.update(HandlerRun)
            .where(HandlerRun.event_id == letter.event_id, HandlerRun.handler == letter.actor,
                   HandlerRun.status != "done")
            .values(status="running", attempts=0, locked_until=None, message_id=None)
        )
    letter.retried_at = clock.now()
    message = dict(letter.message)
    options = {k: v for k, v in dict(message.get("options") or {}).items()
               if k not in ("retries", "traceback", "eta", "redis_message_id", "requeue_timestamp",
                             "last_error")}
    message["options"] = options
    return message
