"""External sync: signed webhook deliveries with a stable id; private targets refused."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from core.adapters.webhooks import WebhookRefused, WebhookSender, delivery_id
from core.events.models import DeadLetter
from core.events.types import EventType
from tests.support.apps import make_app
from tests.support.webhooks import Receiver
from tests.support.workers import EmbeddedWorker

SECRET = "whsec-test-0123456789abcdef"


@pytest.fixture
def receiver():
    server = Receiver(SECRET)
    server.start()
    yield server
    server.stop()


def _app(settings, db, receiver, *, allow_private: bool):
    configured = settings.with_overrides(
        webhook_url=receiver.url, webhook_secret=SECRET, webhook_allow_private=allow_private,
        webhook_events=frozenset({"TEST_EMAIL_REQUESTED", "USER_CREATED"}),
    )
    return make_app(configured, db)


def _record(worker: EmbeddedWorker, type_: EventType, n: int,
            before_commit=lambda events: None) -> list:
    tenant = uuid.uuid4()
    with worker.side.runtime.unit_of_work() as uow:
        events = [uow.record(type_, tenant_id=tenant, payload={"n": i}) for i in range(n)]
        before_commit(events)
        uow.commit()
    return events


def test_each_event_is_delivered_signed_once_and_retries_keep_the_id(
    settings, db, receiver, monkeypatch
):
    worker = EmbeddedWorker(_app(settings, db, receiver, allow_private=True))
    # Retry after 50 ms instead of the production 30 s, so the test sees the redelivery.
    deliver = worker.side.actors.handlers["deliver_webhook"]
    monkeypatch.setitem(deliver.options, "min_backoff", 50)
    monkeypatch.setitem(deliver.options, "max_backoff", 100)
    try:
        with worker.side.runtime.unit_of_work() as uow:
            ignored = uow.record(EventType.LOGIN_FAILED)  # not in WEBHOOK_EVENTS
            uow.commit()
        def fail_first_twice(events):
            receiver.fail_next[str(events[0].id)] = 2

        events = _record(worker, EventType.USER_CREATED, 4, before_commit=fail_first_twice)
        worker.drain()
    finally:
        worker.stop()
    assert all(d["valid"] for d in receiver.deliveries), receiver.deliveries
    by_event: dict[str, list] = {}
    for delivery in receiver.deliveries:
        by_event.setdefault(delivery["event_id"], []).append(delivery)
    assert set(by_event) == {str(e.id) for e in events}
    assert str(ignored.id) not in by_event
    retried = by_event[str(events[0].id)]
    assert len(retried) == 3  # two 503s, then accepted
    assert {d["id"] for d in retried} == {delivery_id(events[0].id, receiver.url)}
    for event in events[1:]:
        assert len(by_event[str(event.id)]) == 1
    document = retried[0]["document"]
    assert document["type"] == "USER_CREATED" and document["payload"] == {"n": 0}
    assert document["tenant_id"] == str(events[0].tenant_id)


def test_private_targets_are_refused_and_dead_lettered(settings, db, receiver):
    worker = EmbeddedWorker(_app(settings, db, receiver, allow_private=False))
    try:
        [event] = _record(worker, EventType.USER_CREATED, 1)
        worker.drain()
    finally:
        worker.stop()
    assert receiver.deliveries == []
    with db.session() as session:
        letter = session.execute(sa.select(DeadLetter)).scalar_one()
    assert letter.actor == "deliver_webhook" and letter.event_id == event.id
    assert "private or reserved" in letter.error


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://10.0.0.8/x",
                                 "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
                                 "ftp://example.com/x", "http://localhost/x"])
def test_ssrf_guard_refuses_before_connecting(url: str) -> None:
    sender = WebhookSender(secret=SECRET, allow_private=False)

    class Stub:
        id = uuid.uuid4()
        type = "USER_CREATED"
        tenant_id = None
        payload: dict = {}
        occurred_at = __import__("datetime").datetime(2026, 1, 1)

    with pytest.raises(WebhookRefused):
        sender.deliver(url, Stub())
