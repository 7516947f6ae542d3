"""The fast path and the relay both publish through here: per handler, one message carrying the
ids of up to `HANDLER_BATCH` events; once the dispatch is committed, one audit nudge per round."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from core.effects import handlers_for
from core.events.models import Event
from core.events.outbox import PublishDeferred, PublishError
from workers.actors import Actors
from workers.runtime import Runtime

log = logging.getLogger(__name__)

# Events per handler message. Big enough to spread a message's fixed costs (a delivery, a
# session, a claim transaction), small enough that a batch finishes well inside a time limit.
HANDLER_BATCH = 50


def _shared_request_id(events: Sequence[Event]) -> str | None:
    """The request id when every event came from one request (the handler logs each event under
    its own id either way)."""
    ids = {event.request_id for event in events}
    return ids.pop() if len(ids) == 1 else None


class BrokerPublisher:
    def __init__(self, runtime: Runtime, actors: Actors) -> None:
        self.runtime = runtime
        self.actors = actors

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        if not self.runtime.can_publish:
            raise PublishDeferred("no in-process worker here")
        by_handler: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            for handler in handlers_for(event.type, self.runtime.settings):
                by_handler[handler.name].append(event)
        try:
            for name, handled in by_handler.items():
                for start in range(0, len(handled), HANDLER_BATCH):
                    batch = handled[start:start + HANDLER_BATCH]
                    ids = [str(event.id) for event in batch]
                    self.actors.handlers[name].send_with_options(
                        # One event: a plain id, the message as it looks on its own.
                        args=(ids[0] if len(ids) == 1 else ids,),
                        request_id=_shared_request_id(batch),
                    )
        except Exception as error:
            raise PublishError(f"{type(error).__name__}: {error}") from error

    def dispatched(self, events: Sequence[Event]) -> None:
        if not events or not self.runtime.can_publish:
            return
        try:
            self.actors.write_audit.send_with_options(request_id=events[-1].request_id)
        except Exception as error:  # the audit sweep comes by within 30 s
            log.warning("audit nudge not sent (%s)", type(error).__name__)
