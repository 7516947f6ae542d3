"""The fast path: committed events handed to the broker from one background thread per process.

A request that recorded events returns as soon as its transaction commits. This thread publishes
whatever has been handed over since its last round (one message per handler for the lot), marks
those events dispatched in one statement and nudges the audit writer once. Under load the rounds
grow with the load; when idle, an event is published about 10 ms after its commit.

Nothing here can lose an event: it is committed before it is handed over, and whatever this
thread cannot publish or mark (the broker is down, the process dies) the relay publishes later.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque
from collections.abc import Sequence

from core.db import Database
from core.events.models import Event
from core.events.outbox import mark_dispatched
from core.scoping import TenantContext
from core.uow import UnitOfWork
from workers.publisher import BrokerPublisher

log = logging.getLogger(__name__)

# Events per round: bounds one UPDATE and one publish burst.
ROUND_LIMIT = 500
# How long a round waits for more events: unnoticeable on an e-mail or a notification, and under
# load it turns a stream of one-event messages into a few batches.
LINGER_SECONDS = 0.025
FLUSH_AT_EXIT_SECONDS = 3.0


class Dispatcher:
    """`hand_over` never raises and, with `background`, never waits on the broker.

    Without `background` (a CLI command that exits right after) it publishes in the caller's
    thread, the same way."""

    def __init__(self, publisher: BrokerPublisher, db: Database, *, background: bool = True):
        self.publisher = publisher
        self.db = db
        self.background = background
        self._queue: deque[Event] = deque()
        self._busy = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0

    def hand_over(self, events: Sequence[Event]) -> None:
        if not events:
            return
        if not self.publisher.runtime.can_publish:
            log.info("%d event(s) left in the outbox for the relay", len(events))
            return
        if not self.background:
            self._dispatch(list(events))
            return
        with self._changed:
            was_empty = not self._queue
            self._queue.extend(events)
            self._ensure_thread()
            # Wake the thread only when it has something new to decide: the first events of a
            # round, or a full round. Waking it per commit cost the requests' CPU.
            if was_empty or len(self._queue) >= ROUND_LIMIT:
                self._changed.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything handed over has been through a round. True when it has."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._queue and not self._busy, timeout)

    def _ensure_thread(self) -> None:
        # A forked child (gunicorn preloading) inherits the object but not the thread.
        if self._thread is not None and self._thread_pid == os.getpid():
            return
        self._busy = False
        self._thread_pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="event-dispatch", daemon=True)
        self._thread.start()
        atexit.register(self.flush, FLUSH_AT_EXIT_SECONDS)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._queue))
                # Linger a moment for the events of other requests committing right now: one
                # message then carries them all, to a worker that pays its costs once.
                self._changed.wait_for(lambda: len(self._queue) >= ROUND_LIMIT, LINGER_SECONDS)
                round_ = [self._queue.popleft()
                          for _ in range(min(len(self._queue), ROUND_LIMIT))]
                self._busy = True
            try:
                self._dispatch(round_)
            except Exception:  # keep the thread alive whatever happens; the relay has them
                log.exception("event dispatch round failed; the relay will publish them")
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _dispatch(self, events: list[Event]) -> None:
        try:
            self.publisher.publish(events)
        except Exception as error:
            # The events are safe in the outbox; the relay publishes them once the broker is back.
            log.warning("broker unavailable, %d event(s) left for the relay: %s",
                        len(events), type(error).__name__)
            return
        try:
            with UnitOfWork(self.db, tenant=TenantContext.system()) as uow:
                mark_dispatched(uow.session, [event.id for event in events])
                uow.commit()
        except Exception as error:
            log.warning("could not mark %d event(s) dispatched (%s); the relay may send them "
                        "again (handlers are idempotent)", len(events), type(error).__name__)
            return
        self.publisher.dispatched(events)
