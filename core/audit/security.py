"""Security entries that have no transaction of their own: failed login, access denied, rate
limit exceeded. They go straight to the audit queue; if the broker is away, into the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from core import clock
from core.adapters.cache import Cache
from core.events.models import Event
from core.events.types import EventType
from core.logs import request_id_var
from core.text import storable, storable_text
from core.uow import Origin

SECURITY_EVENTS = frozenset({
    EventType.LOGIN_FAILED, EventType.ACCESS_DENIED, EventType.UNAUTHORIZED_ACCESS_ATTEMPT,
    EventType.RATE_LIMIT_EXCEEDED,
})


def security_entry(
    type: EventType,
    origin: Origin,
    *,
    tenant_id: uuid.UUID | None = None,
    actor_account_id: uuid.UUID | None = None,
    subject: str | None = None,
    payload: dict[str, Any] | None = None,
    count_key: str | None = None,
) -> dict[str, Any]:
    """A JSON-ready entry with its own id: the id makes a redelivered entry a no-op.

    `count_key` names a cache counter of how often the same thing happened in its window
    (e.g. rejected requests of one client): the entry is written once, with the final count."""
    return {
        "count_key": count_key,
        "id": str(uuid.uuid4()),
        "type": str(type),
        "tenant_id": str(tenant_id) if tenant_id else None,
        "actor_account_id": str(actor_account_id) if actor_account_id else None,
        "subject": storable_text(subject, 120),
        "ip": origin.ip,
        "user_agent": storable_text(origin.user_agent, 400),
        "request_id": request_id_var.get(),
        "payload": storable(payload or {}),
        "occurred_at": clock.now().isoformat(),
    }


def with_final_count(entry: dict[str, Any], cache: Cache) -> dict[str, Any]:
    """The entry as it is written: its window's count filled in (at least the one that made
    it, should the counter be gone)."""
    key = entry.get("count_key")
    if not key:
        return entry
    raw = cache.get(key) or b""
    count = int(raw) if raw.isdigit() else None
    return {**entry, "payload": {**entry["payload"], "count": count or 1}}


def as_outbox_event(entry: dict[str, Any]) -> Event:
    """The fallback: the same entry as an outbox row, audited by the batch writer later."""

    def as_uuid(value: Any) -> uuid.UUID | None:
        return uuid.UUID(value) if value else None

    return Event(
        id=uuid.UUID(entry["id"]),
        type=entry["type"],
        tenant_id=as_uuid(entry["tenant_id"]),
        actor_account_id=as_uuid(entry["actor_account_id"]),
        subject=entry["subject"],
        payload=entry["payload"],
        request_id=entry["request_id"],
        ip=entry["ip"],
        user_agent=entry["user_agent"],
        occurred_at=datetime.fromisoformat(entry["occurred_at"]),
        # Security entries have no handlers: nothing for the relay to publish.
        dispatched_at=clock.now(),
        attempts=0,
    )
