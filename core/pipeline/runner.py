"""Run one handler for its events, each at most once to completion, however often messages come.

The (event, handler) row in `handler_runs` is the idempotency key. A claim is committed before the
effect, so a worker killed mid-effect still counts as an attempt: a message that kills its worker
every time is given up after `max_attempts`, instead of looping forever.

A message carries one event or a batch. A batch is the fast way through for the usual case, every
event on its first attempt: one claim transaction for all of them, then each effect and its
"done" committed together, one event at a time. Anything unusual (an event tried before, claimed
by another message, or failing now) leaves the batch to run on a message of its own, where
retries, backoff and giving up work per event — so one bad event cannot hold up or use up the
attempts of the others.

A message delivered again while its first delivery is still at work (a broker restart drops the
connection it was to be acknowledged on) waits for that delivery instead of taking its claim for a
dead one's: in the same process, known from the deliveries at work here; in another, from that
process's liveness lock (core.adapters.liveness), which a killed process no longer holds.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.adapters import liveness
from core.db import id_in, insert_ignoring_conflicts, insert_new_keys
from core.events.models import Event, HandlerRun
from core.logs import request_id_var
from core.pipeline.handlers import Handler, HandlerContext
from core.services import Services
from core.uow import UnitOfWork

log = logging.getLogger(__name__)

_RUNS: sa.Table = HandlerRun.__table__  # type: ignore[assignment]
# How long the "done" of an effect outside the database (an e-mail, a webhook) waits for a
# database that is away (a restart, a failover, a dropped path) before the message fails. The
# effect cannot be taken back; a failed message is retried, and the retry would repeat it.
DONE_PATIENCE_S = 30.0
_DONE_RETRY_PAUSES_S = (0.2, 0.5, 1.0, 2.0)
# Built once: constructing the statement per event cost more CPU than running it.
_MARK_DONE = (
    sa.update(_RUNS)
    .where(_RUNS.c.event_id == sa.bindparam("done_event"),
           _RUNS.c.handler == sa.bindparam("done_handler"))
    .values(status="done", completed_at=sa.bindparam("done_at"), locked_until=None,
            last_error=None)
)


class _Deliveries:
    """How many deliveries of each message this process is working on right now. A broker that
    loses the connection a message came on (a restart) hands the message out again, to this
    very process too, while its first delivery may still be at work: a holder with the same
    message id is then alive, not dead, and its effect must not run a second time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._working: Counter[str] = Counter()

    @contextlib.contextmanager
    def working_on(self, message_id: str) -> Iterator[None]:
        with self._lock:
            self._working[message_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._working[message_id] -= 1
                if not self._working[message_id]:
                    del self._working[message_id]

    def another_here(self, message_id: str) -> bool:
        """Whether an earlier delivery of this message is still at work in this process."""
        with self._lock:
            return self._working[message_id] > 1


_DELIVERIES = _Deliveries()


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
    with _DELIVERIES.working_on(message_id):
        return _run_one(uow, services, handler, event_id, message_id)


def _run_one(
    uow: UnitOfWork, services: Services, handler: Handler, event_id: uuid.UUID, message_id: str
) -> Outcome:
    event = uow.session.get(Event, event_id)
    if event is None:
        # Events are committed before they are published, so this one was purged since.
        log.warning("event %s no longer exists; nothing for %s to do", event_id, handler.name)
        return Outcome.NO_EVENT
    run = _claim(uow, handler, event_id, message_id, _holder(services))
    if run.status == "done":
        return Outcome.ALREADY_DONE
    if run.status == "dead":
        raise GiveUp(f"{handler.name} gave up on event {event_id} after {run.attempts} attempts")

    try:
        handler.run(HandlerContext(uow=uow, services=services, event=event, message_id=message_id,
                                   handler=handler.name))
        _mark_done(uow, handler, event_id, marker=False)
        log.info("%s done for %s event %s (attempt %d)", handler.name, event.type, event_id,
                 run.attempts)
    except Exception as error:
        uow.rollback()
        _record_failure(uow, handler, event_id, error)
        raise
    return Outcome.DONE


def _claim(uow: UnitOfWork, handler: Handler, event_id: uuid.UUID, message_id: str,
           holder: int | None) -> HandlerRun:
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
    held_by_other = run.message_id not in (None, message_id) or (
        run.message_id == message_id and _still_at_work(session, run, message_id, holder))
    if held_by_other and run.locked_until is not None and run.locked_until > now:
        wait_ms = int((run.locked_until - now).total_seconds() * 1000) + 100
        uow.commit()
        raise ClaimHeld(wait_ms)
    run.attempts += 1
    run.message_id, run.holder = message_id, holder
    run.locked_until = now + timedelta(milliseconds=handler.retry.time_limit_ms)
    if run.attempts > handler.retry.max_attempts:
        run.status = "dead"
        run.locked_until = None
        log.error("giving up %s for event %s after %d attempts",
                  handler.name, event_id, run.attempts - 1)
    # Committed before the effect: an attempt that kills the worker still counts.
    uow.commit()
    return run


def _holder(services: Services) -> int | None:
    return services.liveness.token if services.liveness is not None else None


def _still_at_work(session: Session, run: HandlerRun, message_id: str,
                   holder: int | None) -> bool:
    """Whether the delivery that claimed `run` under `message_id`, now delivered again, is still
    at work: in another thread here, or in another worker process that is alive."""
    if _DELIVERIES.another_here(message_id):
        return True
    other = run.holder
    return other is not None and other != holder and liveness.alive(session, other)


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


@dataclass
class RunAlone:
    """An event of a batch that goes on a message of its own; after a backoff if it `failed`."""

    event_id: uuid.UUID
    failed: bool = False


@dataclass
class BatchOutcome:
    done: int = 0
    skipped: int = 0
    alone: list[RunAlone] = field(default_factory=list)


def run_batch(
    uow: UnitOfWork, services: Services, handler: Handler, event_ids: list[uuid.UUID],
    message_id: str,
) -> BatchOutcome:
    with _DELIVERIES.working_on(message_id):
        return _run_batch(uow, services, handler, event_ids, message_id)


def _run_batch(
    uow: UnitOfWork, services: Services, handler: Handler, event_ids: list[uuid.UUID],
    message_id: str,
) -> BatchOutcome:
    outcome = BatchOutcome()
    session = uow.session
    dialect = session.get_bind().dialect.name
    events = {event.id: event for event in session.execute(
        sa.select(Event).where(id_in(Event.id, event_ids, dialect))).scalars()}
    outcome.skipped = len(set(event_ids) - events.keys())
    claimed_until = clock.now() + timedelta(milliseconds=handler.retry.time_limit_ms)
    claimed, outcome.alone, already_done = _claim_first_attempts(
        uow, handler, [event_id for event_id in event_ids if event_id in events], message_id,
        _holder(services), claimed_until)
    outcome.skipped += already_done
    for position, event_id in enumerate(claimed):
        if clock.now() >= claimed_until:
            # The batch outlived its claims (a mail server answering slowly): another message
            # may take them from now on, so the rest go on messages of their own.
            untried = claimed[position:]
            _unclaim(uow, handler, untried, message_id)
            outcome.alone.extend(RunAlone(rest) for rest in untried)
            break
        error = _run_effect(uow, services, handler, events[event_id], message_id)
        if error is None:
            # Committed before the next effect starts: a worker killed now repeats at most the
            # one effect in flight, as on a message of its own.
            _mark_done(uow, handler, event_id, marker=uow.db.dialect == "postgresql")
            outcome.done += 1
            continue
        # The first failure ends the batch: the failed event retries with backoff on its own
        # message, and the rest do not wait behind a server that is timing out.
        outcome.alone.append(RunAlone(event_id, failed=True))
        untried = claimed[position + 1:]
        _unclaim(uow, handler, untried, message_id)
        outcome.alone.extend(RunAlone(rest) for rest in untried)
        break
    if outcome.done:
        log.info("%s done for %d event(s) of a batch of %d", handler.name, outcome.done,
                 len(event_ids))
    return outcome


def _claim_first_attempts(
    uow: UnitOfWork, handler: Handler, event_ids: list[uuid.UUID], message_id: str,
    holder: int | None, locked_until: datetime,
) -> tuple[list[uuid.UUID], list[RunAlone], int]:
    """Claim, until `locked_until` and in one transaction, the events that no attempt has
    touched yet; every other event that is not done goes alone. Returns (claimed, alone,
    already done)."""
    session = uow.session
    now = clock.now()
    # The usual case: no row yet for any of them, and inserting the rows is the claim.
    fresh = insert_new_keys(session, _RUNS, "event_id", event_ids, {
        "handler": handler.name, "status": "running", "attempts": 1, "message_id": message_id,
        "holder": holder, "locked_until": locked_until, "started_at": now})
    seen_before = [event_id for event_id in event_ids if event_id not in fresh]
    runs = {run.event_id: run for run in session.execute(
        sa.select(HandlerRun)
        .where(id_in(HandlerRun.event_id, seen_before, session.get_bind().dialect.name),
               HandlerRun.handler == handler.name)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars()} if seen_before else {}
    claimed: list[uuid.UUID] = []
    alone: list[RunAlone] = []
    done = 0
    for event_id in event_ids:
        run = runs.get(event_id)
        if run is None:
            claimed.append(event_id)
        elif run.status == "done":
            done += 1
        elif run.attempts == 0 and run.status == "running":  # given back untried
            run.attempts, run.message_id, run.locked_until = 1, message_id, locked_until
            run.holder = holder
            claimed.append(event_id)
        else:
            if run.message_id == message_id and not _still_at_work(session, run, message_id,
                                                                   holder):
                # This very batch, delivered again, and no longer at work anywhere: whoever
                # held the claim died with it.
                run.locked_until = None
            alone.append(RunAlone(event_id))
    uow.commit()
    return claimed, alone, done


def _unclaim(uow: UnitOfWork, handler: Handler, event_ids: list[uuid.UUID],
             message_id: str) -> None:
    """Give back claims of a batch's events that were never tried: no attempt spent. A claim
    another message has taken since is left to it."""
    if not event_ids:
        return
    session = uow.session
    session.execute(
        sa.update(HandlerRun)
        .where(id_in(HandlerRun.event_id, event_ids, session.get_bind().dialect.name),
               HandlerRun.handler == handler.name, HandlerRun.status == "running",
               HandlerRun.message_id == message_id)
        .values(attempts=HandlerRun.attempts - 1, message_id=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    uow.commit()


def _run_effect(
    uow: UnitOfWork, services: Services, handler: Handler, event: Event, message_id: str
) -> Exception | None:
    """Run one claimed event's effect; on failure roll back its rows and record the error."""
    token = request_id_var.set(event.request_id or request_id_var.get())
    try:
        handler.run(HandlerContext(uow=uow, services=services, event=event, message_id=message_id,
                                   handler=handler.name))
        log.debug("%s done for %s event %s", handler.name, event.type, event.id)
        return None
    except Exception as error:
        uow.rollback()
        _record_failure(uow, handler, event.id, error)
        log.warning("%s failed for event %s (%s); it retries on its own message",
                    handler.name, event.id, type(error).__name__)
        return error
    finally:
        request_id_var.reset(token)


def _mark_done(uow: UnitOfWork, handler: Handler, event_id: uuid.UUID, *, marker: bool) -> None:
    """Commit "done" for the event, together with whatever its effect wrote."""
    values = {"done_event": event_id, "done_handler": handler.name, "done_at": clock.now()}
    if uow.has_changes():
        # The effect's rows and its "done" commit together, or neither does (and it repeats).
        uow.session.execute(_MARK_DONE, values)
        uow.commit()
        return

    # An effect outside the database (an e-mail, a webhook), whose rows, if any, were committed
    # before it (HandlerContext.commit_before_effect). In a batch its "done" is a marker, one
    # statement committed on its own (see Database.execute_marker for its durability).
    def write() -> None:
        if marker:
            uow.end_idle_transaction()
            uow.db.execute_marker(_MARK_DONE, values)
        else:
            uow.session.execute(_MARK_DONE, values)
            uow.commit()

    _patiently(write, uow, handler, event_id)


def _patiently(write: Callable[[], None], uow: UnitOfWork, handler: Handler,
               event_id: uuid.UUID) -> None:
    """Write the "done" of an effect that has happened outside the database, waiting up to
    DONE_PATIENCE_S for a database that does not answer."""
    deadline = time.monotonic() + DONE_PATIENCE_S
    for attempt in itertools.count():
        try:
            write()
        except (sa.exc.OperationalError, sa.exc.InterfaceError):
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                uow.rollback()  # a dropped connection: the next attempt takes a new one
            if time.monotonic() >= deadline:
                raise
            if attempt == 0:
                log.warning("%s has done its effect for event %s, and the database cannot record "
                            "it: waiting for the database rather than repeat the effect",
                            handler.name, event_id)
            time.sleep(_DONE_RETRY_PAUSES_S[min(attempt, len(_DONE_RETRY_PAUSES_S) - 1)])
        else:
            if attempt:
                log.warning("%s recorded as done for event %s once the database answered",
                            handler.name, event_id)
            return
