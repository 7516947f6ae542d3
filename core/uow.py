"""The unit of work: one database session, the domain events recorded on it, one commit.

Services change state and call `uow.record(...)`; `uow.commit()` writes the events to the outbox
in the same transaction and, only after the commit succeeded, hands them to the publisher (the
fast path). Rolling back, or never committing, leaves no event and sends nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core import clock
from core.db import Database
from core.events.models import Event
from core.events.outbox import EventPublisher, PublishDeferred, mark_dispatched
from core.events.types import EventType
from core.logs import request_id_var
from core.tenancy.context import TenantContext, set_context
from core.text import storable, storable_text

log = logging.getLogger(__name__)


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
        publisher: EventPublisher | None = None,
        origin: Origin | None = None,
        session: Session | None = None,
        tenant: TenantContext | None = None,
    ) -> None:
        self.db = db
        self.session = session or db.session()
        # Anonymous unless told otherwise: tenant-owned rows stay invisible.
        set_context(self.session, tenant or TenantContext.anonymous())
        self.publisher = publisher
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
        self.session.add_all(events)
        try:
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
        if events and self.publisher is not None:
            self._publish_fast_path(events)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current transaction has committed (never if it rolls back)."""
        self._after_commit.append(callback)

    def _publish_fast_path(self, events: Sequence[Event]) -> None:
        assert self.publisher is not None
        try:
            self.publisher.publish(events)
        except PublishDeferred:
            log.info("%d event(s) left in the outbox for the relay", len(events))
            return
        except Exception as error:
            # The change is committed and the events are safe in the outbox: the relay will
            # publish them once the broker is back. The caller's action has succeeded.
            log.warning("broker unavailable, %d event(s) left for the relay: %s",
                        len(events), type(error).__name__)
            return
        try:
            mark_dispatched(self.session, (event.id for event in events))
            self.session.commit()
        except Exception as error:
            self.session.rollback()
            log.warning("could not mark %d event(s) dispatched (%s); the relay may send them "
                        "again (handlers are idempotent)", len(events), type(error).__name__)
            return
        self.publisher.dispatched(events)

    def end_idle_transaction(self) -> None:
        """End the transaction if it holds nothing unsaved (it only read). Lets another
        connection of this thread write meanwhile; SQLite would otherwise wait on us."""
        session = self.session
        if not (self._pending or session.new or session.dirty or session.deleted):
            session.rollback()

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
