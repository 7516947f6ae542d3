"""Live notifications over Server-Sent Events, through the in-process bus and through Redis."""

from __future__ import annotations

import json
import queue
import threading

import pytest

from core.notifications.service import notify
from core.scoping import TenantContext
from core.uow import UnitOfWork
from tests.conftest import make_settings
from tests.support.apps import make_app
from tests.support.factories import practice
from tests.support.flows import csrf_token, login


@pytest.fixture(params=["in-process", "redis"])
def bus_app(request, db, database_url, instance_dir):
    overrides = {}
    if request.param == "redis":
        overrides["redis_url"] = request.getfixturevalue("redis_url")
    settings = make_settings(database_url, instance_dir, **overrides)
    return make_app(settings, db)


def _read_events(response, into: queue.Queue, *, until_notification: bool = True) -> None:
    """Read SSE blocks into `into`: until the first notification (then hang up, as a closed tab
    does), or until the stream ends (then put None)."""
    buffer = ""
    try:
        for chunk in response.response:
            buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                into.put(block)
                if until_notification and "event: notification" in block:
                    return
    finally:
        if not until_notification:
            into.put(None)
        response.close()


def test_stream_delivers_a_notification_without_polling(bus_app, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    client = bus_app.test_client()
    assert login(client, harbour.therapist_email).status_code == 302
    response = client.get("/api/notifications/stream", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    blocks: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_read_events, args=(response, blocks), daemon=True)
    reader.start()
    assert blocks.get(timeout=5).startswith("retry:")

    services = bus_app.extensions["services"]
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow:
        notify(uow, services.notifications, account_id=harbour.therapist.id,
               tenant_id=harbour.tenant.id, kind="test", title="Your practice is ready",
               body="All set.")
        uow.commit()
    block = blocks.get(timeout=10)
    while block.startswith(":"):  # keep-alives
        block = blocks.get(timeout=10)
    fields = dict(line.split(": ", 1) for line in block.splitlines())
    assert fields["event"] == "notification"
    data = json.loads(fields["data"])
    assert (data["title"], data["body"], data["read"]) == ("Your practice is ready", "All set.",
                                                           False)
    reader.join(timeout=5)

    listed = client.get("/api/notifications").get_json()["notifications"]
    assert [n["title"] for n in listed] == ["Your practice is ready"]
    marked = client.post("/api/notifications/read", json={"ids": [data["id"]]},
                         headers={"X-CSRFToken": csrf_token(client, "/")})
    assert marked.status_code == 200
    assert client.get("/api/notifications").get_json()["notifications"][0]["read"] is True
    bad = client.post("/api/notifications/read", json={"ids": ["nope"]},
                      headers={"X-CSRFToken": csrf_token(client, "/")})
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "invalid"


def test_notifications_api_needs_a_login(client):
    response = client.get("/api/notifications")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_another_account_never_sees_my_notifications(app, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    elm = practice(db, "Elm Street", slug_hint="elm")
    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as uow:
        notify(uow, app.extensions["services"].notifications, account_id=harbour.therapist.id,
               tenant_id=harbour.tenant.id, kind="test", title="Private to Harbour")
        uow.commit()
    other = app.test_client()
    login(other, elm.therapist_email)
    assert other.get("/api/notifications").get_json() == {"notifications": []}


def _open_stream(client, blocks: queue.Queue) -> threading.Thread:
    response = client.get("/api/notifications/stream", buffered=False)
    assert response.status_code == 200
    reader = threading.Thread(target=_read_events, args=(response, blocks),
                              kwargs={"until_notification": False}, daemon=True)
    reader.start()
    return reader


def test_one_account_cannot_hold_every_stream(db, database_url, instance_dir, monkeypatch):
    import web.notifications

    # Streams end by themselves soon after the test, instead of holding a thread for a minute.
    monkeypatch.setattr(web.notifications, "STREAM_SECONDS", 4)
    settings = make_settings(database_url, instance_dir, notification_streams=3,
                             notification_streams_per_account=2)
    app = make_app(settings, db)
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    elm = practice(db, "Elm Street", slug_hint="elm")
    greedy, other = app.test_client(), app.test_client()
    login(greedy, harbour.therapist_email)
    login(other, elm.therapist_email)

    tabs = [queue.Queue() for _ in range(4)]
    _open_stream(greedy, tabs[0])
    assert tabs[0].get(timeout=5) == "retry: 3000"
    _open_stream(greedy, tabs[1])
    assert tabs[1].get(timeout=5) == "retry: 3000"
    # A third tab of the same person replaces the oldest, which is told so and closes.
    _open_stream(greedy, tabs[2])
    assert tabs[2].get(timeout=5) == "retry: 3000"
    replaced = tabs[0].get(timeout=5)
    while replaced.startswith(":"):
        replaced = tabs[0].get(timeout=5)
    assert "event: replaced" in replaced and "retry: 60000" in replaced
    assert tabs[0].get(timeout=5) is None  # the stream ended
    # Someone else still gets a stream.
    _open_stream(other, tabs[3])
    assert tabs[3].get(timeout=5) == "retry: 3000"
    # The process is full now: a newcomer is asked to come back, not left hanging.
    newcomer_blocks: queue.Queue = queue.Queue()
    newcomer = app.test_client()
    login(newcomer, harbour.client_email)
    _open_stream(newcomer, newcomer_blocks)
    assert newcomer_blocks.get(timeout=5) == "retry: 5000"
    assert newcomer_blocks.get(timeout=5) is None
    for tab in tabs[1:]:  # the rest end on their own once their time is up
        while tab.get(timeout=10) is not None:
            pass
