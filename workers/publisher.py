"""The fast path and the relay both publish through here: one message per (event, handler), and
once the dispatch is committed, one nudge to the audit writer per batch."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dramatiq
from dramatiq.brokers.stub import StubBroker

from core.config import Settings
from core.effects import handlers_for
from core.events.models import Event
from core.events.outbox import PublishDeferred, PublishError
from workers import embedded
from workers.actors import HANDLER_ACTORS, write_audit


def can_publish_here() -> bool:
    """False in a process whose in-process broker nobody drains (a CLI in embedded mode)."""
    return not isinstance(dramatiq.get_broker(), StubBroker) or embedded.is_running()


log = logging.getLogger(__name__)


class BrokerPublisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        if not can_publish_here():
            raise PublishDeferred("no in-process worker here")
        try:
            for event in events:
                for handler in handlers_for(event.type, self.settings):
                    HANDLER_ACTORS[handler.name].send_with_options(
                        args=(str(event.id),), request_id=event.request_id
                    )
        except Exception as error:
            raise PublishError(f"{type(error).__name__}: {error}") from error

    def dispatched(self, events: Sequence[Event]) -> None:
        if not events or not can_publish_here():
            return
        try:
            write_audit.send_with_options(request_id=events[-1].request_id)
        except Exception as error:  # the audit sweep comes by within 30 s
            log.warning("audit nudge not sent (%s)", type(error).__name__)
