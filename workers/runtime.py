"""What the actors of this process work with: settings, services, the publisher.

Configured once per process: by `workers.boot` in a worker process, by `create_app` in the web
process (embedded mode runs the actors there), by the scheduler. Actors read it through
`runtime()`; each message's unit of work comes from the middleware through `current_uow()`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dramatiq

from core.config import Settings
from core.services import Services
from core.tenancy.context import TenantContext
from core.uow import Origin, UnitOfWork

if TYPE_CHECKING:
    from workers.dispatch import Dispatcher


@dataclass
class Runtime:
    settings: Settings
    services: Services
    dispatcher: Dispatcher = field(init=False)

    def __post_init__(self) -> None:
        from workers.dispatch import Dispatcher
        from workers.publisher import BrokerPublisher

        self.dispatcher = Dispatcher(BrokerPublisher(self.settings), self.services.db)

    def unit_of_work(self, origin: Origin | None = None) -> UnitOfWork:
        # Workers act for the platform: every tenant's rows, in both walls.
        return UnitOfWork(self.services.db, fast_path=self.dispatcher, origin=origin,
                          tenant=TenantContext.system())


_runtime: Runtime | None = None
_message_scope = threading.local()


def configure(settings: Settings, services: Services | None = None) -> Runtime:
    global _runtime
    _runtime = Runtime(settings=settings, services=services or Services.build(settings))
    return _runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("workers.runtime.configure() has not been called in this process")
    return _runtime


def current_uow() -> UnitOfWork:
    uow: UnitOfWork | None = getattr(_message_scope, "uow", None)
    if uow is None:
        raise RuntimeError("no unit of work: actors run inside the UnitOfWorkPerMessage middleware")
    return uow


def current_message() -> dramatiq.Message[object]:
    message: dramatiq.Message[object] | None = getattr(_message_scope, "message", None)
    if message is None:
        raise RuntimeError("not inside a message")
    return message


def _enter_message(message: dramatiq.Message[object], uow: UnitOfWork) -> None:
    _message_scope.message = message
    _message_scope.uow = uow


def _leave_message() -> UnitOfWork | None:
    uow: UnitOfWork | None = getattr(_message_scope, "uow", None)
    _message_scope.message = None
    _message_scope.uow = None
    return uow
