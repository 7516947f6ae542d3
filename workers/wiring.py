"""The worker half of a process, assembled once by its composition root: the broker, every
actor declared on it, the publisher and the fast path, and the few things the web tier and the
scheduler may ask of them (web.ports.Background)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.broker import Broker
from dramatiq.brokers.stub import StubBroker

from core.audit.security import as_outbox_event
from core.config import Settings
from core.services import Services
from workers.actors import Actors, broker_status, declare_actors
from workers.broker import build_broker
from workers.dispatch import Dispatcher
from workers.middleware import HEARTBEAT_GROUP, platform_middleware
from workers.publisher import BrokerPublisher
from workers.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class WorkerSide:
    settings: Settings
    services: Services
    broker: Broker
    runtime: Runtime
    actors: Actors
    publisher: BrokerPublisher
    dispatcher: Dispatcher

    @property
    def fast_path(self) -> Dispatcher:
        return self.dispatcher

    @property
    def embedded(self) -> bool:
        return isinstance(self.broker, StubBroker)

    def send_security_entry(self, entry: dict[str, Any], *, delay_ms: int | None = None) -> None:
        """A security audit entry with no transaction of its own, sent now (`delay_ms` later
        for one that counts repeats); into the outbox when the broker is away, never dropped."""
        if self.runtime.can_publish:
            try:
                self.actors.write_security_audit.send_with_options(args=(entry,),
                                                                   delay=delay_ms)
                return
            except Exception as error:
                log.warning("broker unavailable for a %s entry (%s); keeping it in the outbox",
                            entry["type"], type(error).__name__)
        with self.services.db.session() as session:
            session.add(as_outbox_event(entry))
            session.commit()

    def broker_status(self) -> str:
        """Raise if the broker cannot be reached; a short description for /api/health."""
        return broker_status(self.broker)

    def alive_workers(self) -> list[str]:
        return self.services.cache.alive(HEARTBEAT_GROUP)

    def enqueue(self, actor_name: str, **options: Any) -> None:
        self.actors.by_name[actor_name].send_with_options(**options)

    def replay(self, message: dict[str, Any]) -> None:
        """Enqueue a stored message again (a dead letter, with a fresh retry budget)."""
        self.broker.enqueue(dramatiq.Message(**message))


def assemble(settings: Settings, services: Services, *, broker: Broker | None = None,
             background_dispatch: bool = True) -> WorkerSide:
    """`background_dispatch=False` for a CLI command, which publishes in its own thread and
    exits right after."""
    broker = broker or build_broker(settings)
    runtime = Runtime(settings=settings, services=services,
                      broker_is_drained=not isinstance(broker, StubBroker))
    for middleware in platform_middleware(runtime):
        broker.add_middleware(middleware)
    actors = declare_actors(broker, runtime)
    publisher = BrokerPublisher(runtime, actors)
    dispatcher = Dispatcher(publisher, services.db, background=background_dispatch)
    runtime.publisher, runtime.fast_path = publisher, dispatcher
    return WorkerSide(settings=settings, services=services, broker=broker, runtime=runtime,
                      actors=actors, publisher=publisher, dispatcher=dispatcher)
