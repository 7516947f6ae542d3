"""Audit entries: every event gets exactly one, in batches; security entries are never dropped."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from core import clock
from core.audit import partitions, writer
from core.audit.models import AuditEntry
from core.audit.security import security_entry
from core.events.models import Event, HandlerRun
from core.events.types import EventType
from core.logs import request_id_var
from core.scoping import system_session
from core.uow import Origin
from tests.support.audit import as_superuser


def _audit_rows(db) -> list[AuditEntry]:
    with system_session(db) as session:
        return list(session.execute(sa.select(AuditEntry).order_by(AuditEntry.id)).scalars())


def test_batch_writer_writes_each_event_once(app, db, side) -> None:
    with side.runtime.unit_of_work(Origin(ip="198.51.100.7", user_agent="agent/1")) as uow:
        for i in range(1200):
            uow.record(EventType.TEST_EMAIL_REQUESTED, subject="mail:test", payload={"n": i})
        uow.commit()
    with side.runtime.unit_of_work() as uow:
        assert writer.write_pending(uow, batch=500) == 1200
    with side.runtime.unit_of_work() as uow:
        assert writer.write_pending(uow) == 0  # a redelivered nudge finds nothing to do
    rows = _audit_rows(db)
    assert len(rows) == 1200
    assert {r.details["n"] for r in rows} == set(range(1200))
    assert {(r.ip, r.user_agent) for r in rows} == {("198.51.100.7", "agent/1")}
    with system_session(db) as session:
        assert session.execute(sa.select(sa.func.count()).where(
            Event.audited_at.is_(None))).scalar_one() == 0


def test_security_entry_goes_straight_to_the_audit_queue(app, side, worker, db) -> None:
    token = request_id_var.set("req-denied-0001")
    try:
        entry = security_entry(EventType.ACCESS_DENIED, Origin(ip="192.0.2.1", user_agent="x"),
                               subject="account:42", payload={"path": "/admin"})
    finally:
        request_id_var.reset(token)
    side.send_security_entry(entry)
    side.send_security_entry(entry)  # delivered twice: still one entry
    worker.drain()
    [row] = _audit_rows(db)
    assert (row.type, row.subject, row.ip, row.request_id) == (
        "ACCESS_DENIED", "account:42", "192.0.2.1", "req-denied-0001")
    assert row.details == {"path": "/admin"}
    with system_session(db) as session:  # its outbox row (the de-duplication key) is done
        assert session.execute(sa.select(sa.func.count()).select_from(Event).where(
            Event.audited_at.is_(None))).scalar_one() == 0


def test_security_entry_falls_back_to_the_outbox_when_the_broker_is_down(app, db, side) -> None:
    # No worker drains this process's in-process broker: as good as down for this entry.
    entry = security_entry(EventType.LOGIN_FAILED, Origin(ip="192.0.2.2"),
                           payload={"reason": "bad password\nINFO forged log line"})
    side.send_security_entry(entry)
    assert _audit_rows(db) == []
    with side.runtime.unit_of_work() as uow:
        assert writer.write_pending(uow) == 1
    [row] = _audit_rows(db)
    assert str(row.event_id) == entry["id"]
    # Free text is stored as data, exactly as given.
    assert row.details["reason"] == "bad password\nINFO forged log line"


def test_an_event_a_handler_is_claiming_right_now_is_still_audited(app, db, side) -> None:
    if db.dialect != "postgresql":
        pytest.skip("row locks need PostgreSQL (SQLite has one writer)")
    with side.runtime.unit_of_work() as uow:
        event = uow.record(EventType.TEST_EMAIL_REQUESTED, payload={"to": "a@example.com"})
        uow.commit()
    # A handler's claim, not yet committed: its foreign key holds a key-share lock on the event.
    with db.engine.connect() as claiming:
        claiming.execute(sa.insert(HandlerRun.__table__).values(
            event_id=event.id, handler="send_test_email", status="running", attempts=1,
            started_at=event.occurred_at))
        with side.runtime.unit_of_work() as uow:
            assert writer.write_pending(uow) == 1
        claiming.rollback()
    with system_session(db) as session:
        assert session.get(Event, event.id).audited_at is not None


FAR_MONTH = datetime(2091, 7, 15, 12, 0, tzinfo=UTC)


def _waiting_for_a_lock(db) -> bool:
    with db.engine.connect() as watcher:
        return bool(watcher.execute(sa.text(
            "SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one())


def test_a_month_s_first_entry_does_not_deadlock_with_a_transaction_that_read_the_log(
        db, side, monkeypatch) -> None:
    """From CI: the writer created a new month's partition (an exclusive lock on the audit
    table) while holding its batch's events; an erasure that had read the audit table and then
    locked those events deadlocked with it, and the erasure was lost."""
    if db.dialect != "postgresql":
        pytest.skip("monthly partitions are PostgreSQL's")
    with as_superuser(db) as admin:  # the month must be new, whatever ran before
        admin.execute(sa.text("DROP TABLE IF EXISTS audit_entries_p209107"))
    with system_session(db) as session:
        partitions.forget_month(session, FAR_MONTH)
    monkeypatch.setattr(clock, "now", lambda: FAR_MONTH)
    with side.runtime.unit_of_work() as uow:
        uow.record(EventType.TEST_EMAIL_REQUESTED, subject="mail:test", payload={})
        uow.commit()

    outcome: dict[str, object] = {}

    def write() -> None:
        try:
            with side.runtime.unit_of_work() as uow:
                outcome["written"] = writer.write_pending(uow)
        except Exception as error:  # the assertion below shows it
            outcome["error"] = error

    with system_session(db) as reader:
        reader.execute(sa.select(sa.func.count()).select_from(AuditEntry))  # holds ACCESS SHARE
        thread = threading.Thread(target=write)
        thread.start()
        deadline = time.monotonic() + 10
        while not _waiting_for_a_lock(db) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _waiting_for_a_lock(db), "the writer never reached the new month"
        locked = reader.execute(sa.select(Event.id).with_for_update()).scalars().all()
        reader.commit()
    thread.join(timeout=30)

    assert len(locked) == 1
    assert outcome == {"written": 1}
    assert len(_audit_rows(db)) == 1
