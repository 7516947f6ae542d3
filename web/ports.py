"""What the web tier asks of the rest of its process, without knowing how it is built.

The process's composition root (assembly/) hands `create_app` an object with these abilities;
in practice the worker side of the process (workers.wiring.WorkerSide)."""

from __future__ import annotations

from typing import Any, Protocol

from core.events.outbox import FastPath


class Background(Protocol):
    @property
    def fast_path(self) -> FastPath:
        """Takes committed events to publish them (the request's unit of work hands them)."""
        ...

    def send_security_entry(self, entry: dict[str, Any], *, delay_ms: int | None = None) -> None:
        """A security audit entry with no transaction of its own; never dropped."""
        ...

    def broker_status(self) -> str:
        """Raises when the broker cannot be reached; a short description for /api/health."""
        ...

    def alive_workers(self) -> list[str]:
        """Worker processes that reported a heartbeat recently."""
        ...

    def enqueue(self, actor_name: str, **options: Any) -> None: ...

    def replay(self, message: dict[str, Any]) -> None:
        """Enqueue a stored message again (a dead letter)."""
        ...
