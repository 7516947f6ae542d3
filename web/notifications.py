"""Live notifications: Server-Sent Events, with a JSON list for pages without EventSource.

A stream holds one gunicorn thread (not a process) for at most STREAM_SECONDS, then ends; the
browser's EventSource reconnects by itself and sends Last-Event-ID, so nothing is missed. Only
NOTIFICATION_STREAMS may be open per process at once, so pages always have threads left, and
one account holds at most NOTIFICATION_STREAMS_PER_ACCOUNT of them (see web.stream_slots).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from flask import Blueprint, Response, current_app, jsonify, request

from core import clock
from core.adapters.notifications import NotificationBus
from core.db import Database
from core.errors import ValidationFailed
from core.notifications import service
from core.notifications.models import Notification
from core.scoping import TenantContext
from core.uow import UnitOfWork
from web.authn import login_required, me
from web.context import request_tenant, services, settings, uow
from web.inputs import aware_timestamp, json_object
from web.stream_slots import StreamSlots

blueprint = Blueprint("notifications", __name__, url_prefix="/api/notifications")

STREAM_SECONDS = 55
# A new stream (no Last-Event-ID) first shows what arrived unread this recently: a notice raised
# while the page was loading is not lost between two pages.
CATCH_UP = timedelta(minutes=10)
# A closed tab is only noticed when we next write to it: keep-alives also free its thread.
KEEPALIVE_SECONDS = 10


def _as_dict(notification: Notification) -> dict[str, object]:
    return {
        "id": str(notification.id),
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "link": notification.link,
        "created_at": notification.created_at.isoformat(),
        "read": notification.read_at is not None,
    }


@blueprint.get("")
@login_required
def recent() -> Response:
    view = me()
    after = aware_timestamp(request.args.get("after"), "after")
    items = service.since(uow().session, view.account_uuid, after)
    return jsonify({"notifications": [_as_dict(n) for n in items]})


@blueprint.post("/read")
@login_required
def mark_read() -> Response:
    view = me()
    ids = _notification_ids(json_object('{"ids": ["<notification id>", …]}'))
    marked = service.mark_read(uow().session, view.account_uuid, ids)
    return jsonify({"ok": True, "marked": marked})


def _notification_ids(body: dict[str, object]) -> list[uuid.UUID]:
    raw = body.get("ids")
    problem = "ids must be a list of at most 100 notification ids"
    if not isinstance(raw, list) or len(raw) > 100 or not all(isinstance(i, str) for i in raw):
        raise ValidationFailed({"ids": problem})
    try:
        return [uuid.UUID(i) for i in raw]
    except ValueError:
        raise ValidationFailed({"ids": problem}) from None


@blueprint.get("/stream")
@login_required
def stream() -> Response:
    view = me()
    after = (aware_timestamp(request.headers.get("Last-Event-ID"), "Last-Event-ID")
             or aware_timestamp(request.args.get("after"), "after"))
    return _event_stream(_events(services().db, services().notifications, _slots(),
                                 view.account_uuid, request_tenant(),
                                 after or clock.now() - CATCH_UP))


def _slots() -> StreamSlots:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    slots: StreamSlots | None = app.extensions.get("notification_streams")
    if slots is None:
        slots = StreamSlots(settings().notification_streams,
                            settings().notification_streams_per_account)
        app.extensions["notification_streams"] = slots
    return slots


def _event_stream(body: Iterator[str]) -> Response:
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # proxies must not hold events back
    return response


def _events(db: Database, bus: NotificationBus, slots: StreamSlots,
            account_id: uuid.UUID, tenant: TenantContext, after: datetime) -> Iterator[str]:
    # Taken here, not in the view: a response that is never read never runs a finally.
    slot, replaced = slots.take(str(account_id))
    if replaced is not None:
        bus.publish(str(account_id))  # wakes the replaced stream, which then closes
    if slot is None:
        yield "retry: 5000\n\n"  # every stream slot of this process is busy: come back soon
        return
    deadline = time.monotonic() + STREAM_SECONDS
    try:
        with bus.subscribe(str(account_id)) as subscription:
            yield "retry: 3000\n\n"
            while time.monotonic() < deadline and not slot.replaced.is_set():
                with UnitOfWork(db, tenant=tenant) as unit:
                    fresh = service.since(unit.session, account_id, after, unread_only=True)
                for notification in fresh:
                    after = notification.created_at
                    yield (f"id: {after.isoformat()}\nevent: notification\n"
                           f"data: {json.dumps(_as_dict(notification))}\n\n")
                if not subscription.wait(min(KEEPALIVE_SECONDS, deadline - time.monotonic())):
                    yield ": keep-alive\n\n"
            if slot.replaced.is_set():
                # A newer stream of the same account took this one's place; the page stops
                # listening until it is looked at again (see app.js).
                yield "retry: 60000\nevent: replaced\ndata: {}\n\n"
    finally:
        slots.release(slot)
