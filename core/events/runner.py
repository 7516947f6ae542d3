"""Run one handler for one event, at most once to completion, however often the message comes.

The (event, handler) row in `handler_runs` is the idempotency key. A claim is committed before the
effect, so a worker killed mid-effect still counts as an attempt: a message that kills its worker
every time is given up after `max_attempts`, instead of looping forever.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from enum import StrEnum

import sqlalchemy as sa

from core import clock
from core.db import insert_ignoring_conflicts
from core.events.handlers import Handler, HandlerContext
from core.events.models import Event, HandlerRun
from core.services import Services
from core.uow import UnitOfWork

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    DONE = "done"
    ALREADY_DONE = "already-done"
    NO_EVENT = "no-event"
    DEAD = "dead"


class GiveUp(Exception):
    """Stop retrying this message: it goes to the dead letters."""


class ClaimHeld(Exception):
    """Another message (a duplicate publish) is working on this effect right now."""

    def __init__(self, retry_in_ms: int) -> None:
        super().__init__(f"claimed by another message; retry in {retry_in_ms} ms")
        self.retry_in_ms = retry_in_ms


def run_handler(
    uow: UnitOfWork, services: Services, handler: Handler, event_id: uuid.UUID, message_id: str
) -> Outcome:
    event = uow.session.get(Event, event_id)
    if event is None:
        # Events are committed before they are published, so this one was purged since.
        log.warning("event %s no longer exists; nothing for %s to do", event_id, handler.name)
        return Outcome.NO_EVENT
    run = _claim(uow, handler, event_id, message_id)
    if run.status == "done":
        return Outcome.ALREADY_DONE
    if run.status == "dead":
        raise GiveUp(f"{handler.name} gave up on event {event_id} after {run.attempts} attempts")

    try:
        handler.run(HandlerContext(uow=uow, services=services, event=event, message_id=message_id,
                                   handler=handler.name))
        run.status = "done"
        run.completed_at = clock.now()
        run.locked_until = None
        run.last_error = None
        uow.commit()
        log.info("%s done for %s event %s (attempt %d)", handler.name, event.type, event_id,
                 run.attempts)
    except Exception as error:
        uow.rollback()
        _record_failure(uow, handler, event_id, error)
        raise
    return Outcome.DONE


def _claim(uow: UnitOfWork, handler: Handler, event_id: uuid.UUID, message_id: str) -> HandlerRun:
    session = uow.session
    now = clock.now()
    insert_ignoring_conflicts(
        session,
        HandlerRun.__table__,  # type: ignore[arg-type]
        [{"event_id": event_id, "handler": handler.name, "status": "running", "attempts": 0,
          "started_at": now}],
    )
    run = session.execute(
        sa.select(HandlerRun)
        .where(HandlerRun.event_id == event_id, HandlerRun.handler == handler.name)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if run.status in ("done", "dead"):
        uow.commit()
        return run
    held_by_other = run.message_id not in (None, message_id)
    if held_by_other and run.locked_until is not None and run.locked_until > now:
        wait_ms = int((run.locked_until - now).total_seconds() * 1000) + 100
        uow.commit()
        raise ClaimHeld(wait_ms)
    run.attempts += 1
    run.message_id = message_id
    run.locked_until = now + timedelta(milliseconds=handler.retry.time_limit_ms)
    if run.attempts > handler.retry.max_attempts:
        run.status = "dead"
        run.locked_until = None
        log.error("giving up %s for event %s after %d attempts",
                  handler.name, event_id, run.attempts - 1)
    # Committed before the effect: an attempt that kills the worker still counts.
    uow.commit()
    return run


def _record_failure(
    uow: UnitOfWork, handler: Handler, event_id: uuid.UUID, error: Exception
) -> None:
    try:
        run = uow.session.get(HandlerRun, (event_id, handler.name))
        if run is not None:
            run.last_error = f"{type(error).__name__}: {error}"[:2000]
            run.locked_until = None
            uow.commit()
    except Exception:  # the database may be what failed; the retry will try again
        uow.rollback()
        log.warning("could not record the failure of %s for event %s", handler.name, event_id)
