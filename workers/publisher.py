"""The fast path and the relay both publish through here: one message per (event, handler), plus
one nudge to the audit writer per batch."""

from __future__ import annotations

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
            write_audit.send_with_options(request_id=events[-1].request_id)
        except Exception as error:
            raise PublishError(f"{type(error).__name__}: {error}") from error
