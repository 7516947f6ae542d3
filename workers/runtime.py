"""What one process's actors work with: settings, services, and the message being handled.

Built once by the process's composition root (`workers.wiring.assemble`) and handed to every
actor and middleware; nothing here is a module-level global. Each message's unit of work comes
from the middleware, through `current_uow()`, and belongs to the thread handling it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from dramatiq.broker import MessageProxy

from core.config import Settings
from core.scoping import TenantContext
from core.services import Services
from core.uow import Origin, UnitOfWork


@dataclass
class Runtime:
    settings: Settings
    services: Services
    # Whether messages published here get run: always with a real broker (worker processes
    # consume it); with the in-process StubBroker only while an embedded worker drains it (a CLI
    # command in embedded mode has none, so its events wait in the outbox for the process that
    # does).
    broker_is_drained: bool = False
    # Set by `workers.wiring.assemble` once they exist (they are built from the actors).
    publisher: Any = None
    fast_path: Any = None
    _message_scope: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def can_publish(self) -> bool:
        return self.broker_is_drained

    def unit_of_work(self, origin: Origin | None = None) -> UnitOfWork:
        # Workers act for the platform: every tenant's rows, in both walls.
        return UnitOfWork(self.services.db, fast_path=self.fast_path, origin=origin,
                          tenant=TenantContext.system())

    def current_uow(self) -> UnitOfWork:
        uow: UnitOfWork | None = getattr(self._message_scope, "uow", None)
        if uow is None:
            raise RuntimeError("no unit of work: actors run inside UnitOfWorkPerMessage")
        return uow

    def current_message(self) -> MessageProxy:
        message: MessageProxy | None = getattr(self._message_scope, "message", None)
        if message is None:
            raise RuntimeError("not inside a message")
        return message

    def enter_message(self, message: MessageProxy) -> None:
        self._message_scope.message = message
        self._message_scope.uow = self.unit_of_work()

    def leave_message(self) -> None:
        uow: UnitOfWork | None = getattr(self._message_scope, "uow", None)
        self._message_scope.message = None
        self._message_scope.uow = None
        if uow is not None:
            uow.close()
