"""The unit of work: one database session, the domain events recorded on it, one commit.

Services change state and call `uow.record(...)`; `uow.commit()` writes the events to the outbox
in the same transaction and, only after the commit succeeded, hands them to the fast path, which
publishes them. Rolling back, or never committing, leaves no event and sends nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from core import clock
from core.db import Database
from core.events.models import EVENTS, Event
from core.events.outbox import FastPath
from core.events.types import EventType
from core.logs import request_id_var
from core.scoping import TenantContext, set_context
from core.text import storable, storable_text

log = logging.getLogger(__name__)

_EVENT_COLUMNS = tuple(column.key for column in EVENTS.columns)
_INSERT_EVENTS = sa.insert(EVENTS)
# Set on a session whose open transaction ran an INSERT, UPDATE or DELETE statement: rows the
# ORM's own bookkeeping (new, dirty, deleted) never hears of.
_WROTE = "uow.wrote"
# How many statements a session has run through Session.execute (queries and lazy loads
# included), ever: what a page made only of cached values checks it did not do.
_STATEMENTS = "uow.statements"


@event.listens_for(Session, "do_orm_execute")
def _note_statement_writes(state: ORMExecuteState) -> None:
    info = state.session.info
    info[_STATEMENTS] = info.get(_STATEMENTS, 0) + 1
    if state.is_insert or state.is_update or state.is_delete:
        info[_WROTE] = True


def statements_run(session: Session) -> int:
    return int(session.info.get(_STATEMENTS, 0))


@event.listens_for(Session, "after_transaction_end")
def _forget_statement_writes(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_WROTE, None)


@dataclass(frozen=True)
class Origin:
    """Where an action came from, stamped on every event it records (and so on its audit entry)."""

    ip: str | None = None
    user_agent: str | None = None

    @staticmethod
    def system() -> Origin:
        return Origin()


class UnitOfWork:
    def __init__(
        self,
        db: Database,
        *,
        fast_path: FastPath | None = None,
        origin: Origin | None = None,
        session: Session | None = None,
        tenant: TenantContext | None = None,
    ) -> None:
        self.db = db
        self.session = session or db.session()
        # Anonymous unless told otherwise: tenant-owned rows stay invisible.
        set_context(self.session, tenant or TenantContext.anonymous())
        self.fast_path = fast_path
        self.origin = origin or Origin.system()
        self._pending: list[Event] = []
        self._after_commit: list[Callable[[], None]] = []

    # -- events ---------------------------------------------------------------------------
    def record(
        self,
        type: EventType,
        *,
        tenant_id: uuid.UUID | None = None,
        actor_account_id: uuid.UUID | None = None,
        subject: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Event:
        event = Event(
            id=uuid.uuid4(),
            type=str(type),
            tenant_id=tenant_id,
            actor_account_id=actor_account_id,
            subject=storable_text(subject, 120),
            payload=storable(payload or {}),
            request_id=request_id_var.get(),
            ip=self.origin.ip,
            user_agent=storable_text(self.origin.user_agent, 400),
            occurred_at=clock.now(),
            attempts=0,
        )
        self._pending.append(event)
        return event

    @property
    def pending_events(self) -> Sequence[Event]:
        return tuple(self._pending)

    # -- transaction ----------------------------------------------------------------------
    def commit(self) -> None:
        events, self._pending = self._pending, []
        try:
            if events:
                self._write_outbox(events)
            self.session.commit()
        except BaseException:
            self.session.rollback()
            raise
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed; the commit itself stands")
        if events and self.fast_path is not None:
            try:
                self.fast_path.hand_over(events)
            except Exception:  # the events are committed: the relay publishes them
                log.exception("fast path failed; %d event(s) left for the relay", len(events))

    def commit_before_refusing(self) -> None:
        """Commit now what this unit has done so far, because the refusal the caller raises
        next would have it rolled back at the request boundary: a failed login must still be
        counted (and the lockout it causes kept). The one place core commits part-way."""
        self.commit()

    def _write_outbox(self, events: Sequence[Event]) -> None:
        """One INSERT for the events, after the rest of the unit's changes (a Core insert costs
        a fraction of the ORM's flush of the same rows, on every request that records one)."""
        self.session.flush()
        self.session.execute(_INSERT_EVENTS, [
            {name: getattr(event, name) for name in _EVENT_COLUMNS} for event in events
        ])

    @contextmanager
    def rehearsal(self) -> Iterator[None]:
        """Do the work inside, down to the database, then undo it: its rows (a savepoint rolled
        back) and the events it recorded. For answers that must cost the same whichever way
        they go, so that timing does not tell them apart."""
        recorded = len(self._pending)
        savepoint = self.session.begin_nested()
        try:
            yield
            self.session.flush()
        finally:
            savepoint.rollback()
            del self._pending[recorded:]

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current transaction has committed (never if it rolls back)."""
        self._after_commit.append(callback)

    def has_changes(self) -> bool:
        """Something waits for the next commit: rows, events or after-commit callbacks."""
        return bool(self._after_commit) or self._holds_writes()

    def end_idle_transaction(self) -> None:
        """End the transaction if it holds nothing unsaved (it only read). Lets another
        connection of this thread write meanwhile; SQLite would otherwise wait on us."""
        if not self._holds_writes():
            self.session.rollback()

    def _holds_writes(self) -> bool:
        session = self.session
        return bool(self._pending or session.new or session.dirty or session.deleted
                    or session.info.get(_WROTE))

    def rollback(self) -> None:
        self._pending.clear()
        self._after_commit.clear()
        self.session.rollback()

    def close(self) -> None:
        """End the unit of work; whatever was not committed is rolled back."""
        self._pending.clear()
        self._after_commit.clear()
        self.session.close()

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
