"""Security audit entries the web tier observes itself: a request without a login, a role or a
practice that does not fit, a rate limit hit. They have no transaction of their own, so they are
handed to the workers once the request has ended (never dropped: see WorkerSide)."""

from __future__ import annotations

from typing import Any

from flask import g, request

from core.audit.security import security_entry
from core.events.types import EventType
from web.context import after_request_ends, background, origin


def record_security(type_: EventType, *, count_key: str | None = None,
                    delay_ms: int | None = None, **fields: Any) -> None:
    """With `count_key` the entry is written `delay_ms` later, with the count of its repeats."""
    view = g.get("view")
    entry = security_entry(
        type_, origin(),
        tenant_id=view.tenant_uuid if view else None,
        actor_account_id=view.account_uuid if view else None,
        subject=fields.pop("subject", None),
        payload={"method": request.method, "path": request.path[:200], **fields},
        count_key=count_key,
    )
    sink = background()
    after_request_ends(lambda: sink.send_security_entry(entry, delay_ms=delay_ms))
