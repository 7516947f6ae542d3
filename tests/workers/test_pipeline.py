"""The outbox → broker → idempotent handler pipeline, with the in-process worker (embedded mode)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from assembly import worker_side_of
from core import clock
from core.audit.models import AuditEntry
from core.events import outbox
from core.events.models import DeadLetter, Event, HandlerRun
from core.mail.models import MailLog
from core.mail.test_email import request_test_email
from core.scoping import system_session
from core.uow import Origin, UnitOfWork
from tests.support.apps import make_app
from tests.support.tcp_proxy import TcpProxy
from tests.support.workers import EmbeddedWorker


@pytest.fixture
def mail_app(smtp_server, settings, db):
    """The app, sending real SMTP to the test's aiosmtpd server."""
    configured = settings.with_overrides(smtp_url=smtp_server.url)
    return make_app(configured, db)


@pytest.fixture
def side(mail_app):
    return worker_side_of(mail_app)


@pytest.fixture
def worker(mail_app):
    running = EmbeddedWorker(mail_app)
    yield running
    running.stop()


def _count(db, model) -> int:
    with system_session(db) as session:
        return session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def test_a_committed_event_sends_exactly_one_email(mail_app, worker, smtp_server, db, side) -> None:
    with side.runtime.unit_of_work(Origin(ip="203.0.113.9", user_agent="pytest")) as uow:
        event = request_test_email(uow, "someone@example.com")
        uow.commit()
    worker.drain()
    [message] = smtp_server.wait_for(1)
    assert message["Message-ID"].strip() == f"<{event.id}.send_test_email@practice.localhost>"
    with system_session(db) as session:
        stored = session.get(Event, event.id)
        assert stored.dispatched_at is not None and stored.audited_at is not None
        [entry] = session.execute(sa.select(AuditEntry)).scalars().all()
        assert (entry.type, entry.ip, entry.user_agent) == (
            "TEST_EMAIL_REQUESTED", "203.0.113.9", "pytest")
        assert entry.details == {"to": "someone@example.com"}


def test_a_rolled_back_transaction_leaves_no_event_no_message_no_email(
    mail_app, worker, smtp_server, db, side) -> None:
    with side.runtime.unit_of_work() as uow:
        request_test_email(uow, "someone@example.com")
        uow.rollback()
        uow.commit()  # nothing left to commit
    with side.runtime.unit_of_work() as uow:
        request_test_email(uow, "someone@example.com")
        # The transaction itself fails at commit (a duplicate key), after the event was recorded.
        duplicate = {"message_id": "m-1", "queue": "q", "actor": "a", "attempts": 1,
                     "message": {}, "failed_at": clock.now()}
        uow.session.add(DeadLetter(**duplicate))
        uow.session.add(DeadLetter(**duplicate))
        with pytest.raises(IntegrityError):
            uow.commit()
    worker.drain()
    assert _count(db, Event) == 0
    assert _count(db, DeadLetter) == 0
    assert all(q.qsize() == 0 for q in worker.broker.queues.values())
    assert smtp_server.messages == []


def test_a_message_published_twice_is_handled_once(mail_app, worker, smtp_server, db, side) -> None:
    with side.runtime.unit_of_work() as uow:
        event = request_test_email(uow, "twice@example.com")
        uow.commit()
    worker.drain()
    # A relay that raced the fast path, or a redelivery: the same event published again.
    side.publisher.publish([event])
    side.publisher.publish([event])
    worker.drain()
    assert len(smtp_server.wait_for(1)) == 1
    with system_session(db) as session:
        run = session.get(HandlerRun, (event.id, "send_test_email"))
        assert (run.status, run.attempts) == ("done", 1)
    assert _count(db, AuditEntry) == 1


def test_events_missed_by_the_fast_path_are_relayed(mail_app, smtp_server, db, side) -> None:
    # No worker in this process yet: the publish is deferred and the events wait in the outbox.
    with side.runtime.unit_of_work() as uow:
        events = [request_test_email(uow, f"user{i}@example.com") for i in range(3)]
        uow.commit()
    with system_session(db) as session:
        assert session.execute(sa.select(sa.func.count()).where(
            Event.dispatched_at.is_(None))).scalar_one() == 3
    from tests.support.workers import EmbeddedWorker

    running = EmbeddedWorker(mail_app)
    try:
        clock_now = clock.now
        try:  # the relay leaves fresh events to the fast path for a few seconds
            clock.now = lambda: clock_now() + outbox.RELAY_GRACE * 2
            with side.runtime.unit_of_work() as uow:
                assert outbox.relay(uow, side.publisher) == 3
        finally:
            clock.now = clock_now
        running.drain()
    finally:
        running.stop()
    received = {str(m["To"]) for m in smtp_server.wait_for(3)}
    assert received == {e.payload["to"] for e in events}


def test_two_relays_at_once_publish_each_event_once(app, db, side) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SKIP LOCKED concurrency needs PostgreSQL (SQLite has one writer)")
    with side.runtime.unit_of_work() as uow:
        for i in range(10):
            request_test_email(uow, f"r{i}@example.com")
        uow.commit()
    published: list[uuid.UUID] = []

    class Recording:
        def publish(self, events):
            published.extend(e.id for e in events)

        def dispatched(self, events):
            pass

    late = clock.now() + outbox.RELAY_GRACE * 2
    first, second = side.runtime.unit_of_work(), side.runtime.unit_of_work()
    clock_now = clock.now
    clock.now = lambda: late
    try:
        # The first relay holds its row locks (not committed yet) while the second runs.
        claimed = first.session.execute(
            sa.select(Event).where(Event.dispatched_at.is_(None))
            .with_for_update(skip_locked=True).limit(4)).scalars().all()
        assert len(claimed) == 4
        assert outbox.relay(second, Recording()) == 6
        first.rollback()
        assert outbox.relay(first, Recording()) == 4
    finally:
        clock.now = clock_now
        first.close()
        second.close()
    assert len(published) == len(set(published)) == 10


# -- batches --------------------------------------------------------------------------------------

def _runs(db, event_ids) -> dict:
    with system_session(db) as session:
        return {run.event_id: run for run in session.execute(
            sa.select(HandlerRun).where(HandlerRun.event_id.in_(event_ids))).scalars()}


def _commit_test_emails(addresses: list[str], side) -> list[Event]:
    with side.runtime.unit_of_work() as uow:
        events = [request_test_email(uow, address) for address in addresses]
        uow.commit()
    return events


def test_a_batch_is_one_message_one_claim_and_one_connection(mail_app, smtp_server, db,
                                                             side) -> None:
    # Committed with no worker here: nothing is published until the publisher below.
    events = _commit_test_emails([f"batch{n}@example.com" for n in range(20)], side)
    from tests.support.workers import EmbeddedWorker

    running = EmbeddedWorker(mail_app)
    try:
        side.publisher.publish(events)
        running.drain()
    finally:
        running.stop()
    received = smtp_server.wait_for(20)
    assert sorted(str(m["To"]) for m in received) == sorted(e.payload["to"] for e in events)
    assert len(set(smtp_server.peers)) == 1
    runs = _runs(db, [e.id for e in events])
    assert {(run.status, run.attempts) for run in runs.values()} == {("done", 1)}
    assert len({run.message_id for run in runs.values()}) == 1


def test_a_batch_delivered_again_runs_each_event_alone_at_once(mail_app, smtp_server, db,
                                                               side) -> None:
    from core.effects import handler_named
    from core.pipeline import runner

    handler = handler_named("send_test_email")
    ids = [e.id for e in _commit_test_emails(["a@example.com", "b@example.com"], side)]
    # The first delivery died right after its claim: one attempt each, nothing sent.
    with side.runtime.unit_of_work() as uow:
        runner._claim_first_attempts(uow, handler, ids, "batch-message", None,
                                     clock.now() + timedelta(minutes=1))
    with side.runtime.unit_of_work() as uow:
        outcome = runner.run_batch(uow, side.services, handler, ids, "batch-message")
    assert (outcome.done, [(a.event_id, a.failed) for a in outcome.alone]) == (
        0, [(ids[0], False), (ids[1], False)])
    assert smtp_server.messages == []
    for event_id in ids:  # their own messages may claim at once: the dead holder let go
        with side.runtime.unit_of_work() as uow:
            assert runner.run_handler(uow, side.services, handler, event_id,
                                      f"alone-{event_id}") is runner.Outcome.DONE
    assert len(smtp_server.wait_for(2)) == 2
    assert {(r.status, r.attempts) for r in _runs(db, ids).values()} == {("done", 2)}


def test_a_failure_ends_the_batch_without_spending_the_others_attempts(
    mail_app, smtp_server, db, side) -> None:
    from core.effects import handler_named
    from core.pipeline import runner

    class RefusesOne:
        def __init__(self, mailer) -> None:
            self.mailer = mailer

        def send(self, mail) -> None:
            if mail.envelope_to == "refused@example.com":
                raise OSError("connection reset")
            self.mailer.send(mail)

    services = side.services
    handler = handler_named("send_test_email")
    events = _commit_test_emails(["sent@example.com", "refused@example.com", "later@example.com"],
                                 side)
    ids = [e.id for e in events]
    original = services.mailer
    services.mailer = RefusesOne(original)
    try:
        with side.runtime.unit_of_work() as uow:
            outcome = runner.run_batch(uow, services, handler, ids, "batch-message")
    finally:
        services.mailer = original
    assert outcome.done == 1
    assert [(a.event_id, a.failed) for a in outcome.alone] == [(ids[1], True), (ids[2], False)]
    runs = _runs(db, ids)
    assert (runs[ids[0]].status, runs[ids[0]].attempts) == ("done", 1)
    assert (runs[ids[1]].status, runs[ids[1]].attempts) == ("running", 1)
    assert "connection reset" in runs[ids[1]].last_error
    # Never tried: its claim is given back, no attempt spent.
    assert (runs[ids[2]].status, runs[ids[2]].attempts, runs[ids[2]].locked_until) == (
        "running", 0, None)
    assert [str(m["To"]) for m in smtp_server.wait_for(1)] == ["sent@example.com"]


def test_a_row_written_by_a_statement_is_a_change_the_unit_keeps(db) -> None:
    """A handler whose only write is an INSERT statement (no ORM object): its "done" must not
    take the transaction for an idle one and roll the row back."""
    from core.db import insert_ignoring_conflicts
    from core.scoping import TenantContext

    row = {"id": uuid.uuid4(), "recipient_hash": "0" * 64, "kind": "test_email",
           "event_id": None, "status": "sent", "created_at": clock.now()}
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        uow.session.execute(sa.select(MailLog.id)).all()
        assert not uow.has_changes()
        insert_ignoring_conflicts(uow.session, MailLog.__table__, [row])
        assert uow.has_changes()
        uow.end_idle_transaction()
        uow.commit()
        assert not uow.has_changes()
    assert _count(db, MailLog) == 1


class _WatchesTheSend:
    """Wraps the mailer: what another connection sees as the e-mail starts out, and whether the
    server has taken it yet."""

    def __init__(self, mailer, db) -> None:
        self.mailer, self.db = mailer, db
        self.seen_at_send: list[tuple[str, int]] = []
        self.server_has_it = False

    def send(self, mail) -> None:
        with system_session(self.db) as session:
            self.seen_at_send.append((
                session.execute(sa.select(HandlerRun.status)).scalar_one(),
                session.execute(sa.select(sa.func.count()).select_from(MailLog)).scalar_one()))
        self.mailer.send(mail)
        self.server_has_it = True


@pytest.mark.parametrize("batched", [False, True])
def test_an_e_mail_s_record_is_committed_before_it_goes_and_only_done_is_left_after(
        mail_app, smtp_server, db, side, batched) -> None:
    """A worker killed after the server took an e-mail, before its "done" was written, sends it
    again on retry. What it depends on is committed before it goes; in a batch (the usual way)
    the effect's own transaction then writes nothing more: "done" is a marker of its own. (A
    retried or lone event commits its "done" durably, one statement.)"""
    from core.effects import handler_named
    from core.pipeline import runner

    handler = handler_named("send_test_email")
    [event] = _commit_test_emails(["once@example.com"], side)
    services = side.services
    original = services.mailer
    services.mailer = watcher = _WatchesTheSend(original, db)
    after_the_server_had_it: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:
        if watcher.server_has_it:
            after_the_server_had_it.append(statement)

    sa.event.listen(services.db.engine, "before_cursor_execute", note)
    try:
        with side.runtime.unit_of_work() as uow:
            if batched:
                assert runner.run_batch(uow, services, handler, [event.id], "message-1").done == 1
            else:
                assert runner.run_handler(uow, services, handler, event.id,
                                          "message-1") == runner.Outcome.DONE
    finally:
        sa.event.remove(services.db.engine, "before_cursor_execute", note)
        services.mailer = original
    assert watcher.seen_at_send == [("running", 1)]
    assert watcher.server_has_it
    # Transaction control aside (SQLite's BEGIN IMMEDIATE), only "done" is left. On SQLite it
    # is always a statement of the handler's transaction: there is no marker connection.
    writes = [statement.split()[:2] for statement in after_the_server_had_it
              if not statement.startswith("BEGIN")]
    marker = batched and db.dialect == "postgresql"
    assert writes == ([] if marker else [["UPDATE", "handler_runs"]])
    assert [str(m["To"]) for m in smtp_server.wait_for(1)] == ["once@example.com"]
    run = _runs(db, [event.id])[event.id]
    assert (run.status, run.attempts) == ("done", 1)


class _DatabaseGoesAwayAfter:
    """Wraps the mailer: as soon as the server has the e-mail, the path to the database is cut
    (new connections refused, open ones dropped), and restored `away_s` later."""

    def __init__(self, mailer, proxy: TcpProxy, away_s: float) -> None:
        self.mailer, self.proxy, self.away_s = mailer, proxy, away_s
        self.came_back = threading.Event()

    def send(self, mail) -> None:
        self.mailer.send(mail)
        self.proxy.cut()
        timer = threading.Timer(self.away_s, self._restore)
        timer.daemon = True
        timer.start()

    def _restore(self) -> None:
        self.proxy.restore()
        self.came_back.set()


@pytest.mark.parametrize("batched", [False, True])
def test_an_e_mail_whose_done_meets_the_database_away_waits_for_it_and_goes_once(
        mail_app, smtp_server, db, side, batched, caplog) -> None:
    """The database goes away just as the mail server takes the e-mail (a restart, a failover).
    The e-mail's "done" waits for the database to answer again instead of failing the message,
    whose retry would send the e-mail a second time."""
    from core.db import Database
    from core.effects import handler_named
    from core.pipeline import runner
    from core.scoping import TenantContext

    if db.dialect != "postgresql":
        pytest.skip("needs PostgreSQL: a network path to the database that can be cut")
    url = sa.engine.make_url(db.url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.restore()
    through_proxy = Database(url.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False))
    handler = handler_named("send_test_email")
    [event] = _commit_test_emails(["once@example.com"], side)
    services = side.services
    original = services.mailer
    services.mailer = mailer = _DatabaseGoesAwayAfter(original, proxy, away_s=1.5)
    try:
        with UnitOfWork(through_proxy, tenant=TenantContext.system()) as uow:
            if batched:
                assert runner.run_batch(uow, services, handler, [event.id], "message-1").done == 1
            else:
                assert runner.run_handler(uow, services, handler, event.id,
                                          "message-1") is runner.Outcome.DONE
    finally:
        services.mailer = original
        through_proxy.dispose()
        proxy.close()
    assert mailer.came_back.is_set()  # "done" was written after the database came back
    assert "waiting for the database rather than repeat the effect" in caplog.text
    run = _runs(db, [event.id])[event.id]
    assert (run.status, run.attempts) == ("done", 1)
    with side.runtime.unit_of_work() as uow:  # the message, delivered again
        assert runner.run_handler(uow, services, handler, event.id,
                                  "message-1") is runner.Outcome.ALREADY_DONE
    assert [str(m["To"]) for m in smtp_server.wait_for(1)] == ["once@example.com"]
    assert len(smtp_server.messages) == 1


def test_an_e_mail_retried_after_a_refusal_is_counted_once_and_arrives_once(
        mail_app, smtp_server, db, side) -> None:
    from core.effects import handler_named
    from core.pipeline import runner

    handler = handler_named("send_test_email")
    [event] = _commit_test_emails(["retried@example.com"], side)
    services = side.services
    original = services.mailer
    services.mailer = _FailsOnce(original, server_takes_it=False)
    try:
        with side.runtime.unit_of_work() as uow, pytest.raises(OSError):
            runner.run_handler(uow, services, handler, event.id, "message-1")
        assert _runs(db, [event.id])[event.id].status == "running"
        with side.runtime.unit_of_work() as uow:
            assert runner.run_handler(uow, services, handler, event.id,
                                      "message-2") == runner.Outcome.DONE
    finally:
        services.mailer = original
    assert [str(m["To"]) for m in smtp_server.wait_for(1)] == ["retried@example.com"]
    run = _runs(db, [event.id])[event.id]
    assert (run.status, run.attempts) == ("done", 2)
    with system_session(db) as session:
        assert session.execute(sa.select(MailLog.status).where(
            MailLog.event_id == event.id)).scalars().all() == ["sent"]


def test_a_message_delivered_again_while_its_first_delivery_works_waits_for_it(
        mail_app, smtp_server, db, side) -> None:
    import threading

    from core.effects import handler_named
    from core.pipeline import runner

    handler = handler_named("send_test_email")
    [event] = _commit_test_emails(["redelivered@example.com"], side)
    services = side.services
    original = services.mailer
    sending, release = threading.Event(), threading.Event()

    class SlowServer:
        def send(self, mail) -> None:
            sending.set()
            release.wait(10)
            original.send(mail)

    outcomes: list[runner.Outcome] = []

    def first_delivery() -> None:
        with side.runtime.unit_of_work() as uow:
            outcomes.append(runner.run_handler(uow, services, handler, event.id, "message-1"))

    services.mailer = SlowServer()
    worker_thread = threading.Thread(target=first_delivery)
    worker_thread.start()
    try:
        assert sending.wait(10)
        # The broker restarted before the first delivery was acknowledged, and hands the same
        # message to another thread of this worker.
        with side.runtime.unit_of_work() as uow, pytest.raises(runner.ClaimHeld):
            runner.run_handler(uow, services, handler, event.id, "message-1")
    finally:
        release.set()
        worker_thread.join(10)
        services.mailer = original
    assert outcomes == [runner.Outcome.DONE]
    with side.runtime.unit_of_work() as uow:  # its retry, later
        assert runner.run_handler(uow, services, handler, event.id,
                                  "message-1") is runner.Outcome.ALREADY_DONE
    assert [str(m["To"]) for m in smtp_server.wait_for(1)] == ["redelivered@example.com"]
    assert (_runs(db, [event.id])[event.id].attempts, len(smtp_server.messages)) == (1, 1)


def test_a_batch_that_outlives_its_claims_leaves_the_rest_to_messages_of_their_own(
        mail_app, smtp_server, db, side, monkeypatch) -> None:
    from core.effects import handler_named
    from core.pipeline import runner

    handler = handler_named("send_test_email")
    first, second = _commit_test_emails(["slow1@example.com", "slow2@example.com"], side)
    original, real_now = side.services.mailer, clock.now
    past_the_claims = timedelta(milliseconds=handler.retry.time_limit_ms, seconds=1)

    class SlowServer:
        """Takes longer over the first e-mail than the batch's claims last."""

        def send(self, mail) -> None:
            original.send(mail)
            monkeypatch.setattr(clock, "now", lambda: real_now() + past_the_claims)

    monkeypatch.setattr(side.services, "mailer", SlowServer())
    with side.runtime.unit_of_work() as uow:
        outcome = runner.run_batch(uow, side.services, handler, [first.id, second.id],
                                   "slow-batch")
    assert (outcome.done, [alone.event_id for alone in outcome.alone]) == (1, [second.id])
    assert [str(m["To"]) for m in smtp_server.wait_for(1)] == ["slow1@example.com"]
    given_back = _runs(db, [second.id])[second.id]
    assert (given_back.attempts, given_back.message_id, given_back.locked_until) == (0, None, None)


def _claimed_elsewhere(db, event_id, handler: str, message_id: str, holder: int) -> None:
    """The state a worker process leaves while it sends an event's e-mail: its claim, under the
    message it is working on, with its liveness token."""
    now = clock.now()
    with system_session(db) as session:
        session.add(HandlerRun(event_id=event_id, handler=handler, status="running", attempts=1,
                               message_id=message_id, holder=holder, started_at=now,
                               locked_until=now + timedelta(minutes=1)))
        session.commit()


@pytest.fixture
def other_process(db):
    """Another worker process's liveness lock, on a connection of its own."""
    if db.dialect != "postgresql":
        pytest.skip("a worker process's liveness is a PostgreSQL advisory lock")
    from core.adapters.liveness import ProcessLiveness

    other = ProcessLiveness(db.url)
    other.start()
    yield other
    other.stop()


def test_a_message_delivered_again_while_another_live_process_works_on_it_waits(
        mail_app, smtp_server, db, side, other_process) -> None:
    from core.effects import handler_named
    from core.pipeline import runner

    handler = handler_named("send_test_email")
    [event] = _commit_test_emails(["elsewhere@example.com"], side)
    # Another process is sending this event's e-mail when the broker, restarted, hands the same
    # message to this one.
    _claimed_elsewhere(db, event.id, handler.name, "message-1", other_process.token)
    with side.runtime.unit_of_work() as uow, pytest.raises(runner.ClaimHeld):
        runner.run_handler(uow, side.services, handler, event.id, "message-1")
    assert smtp_server.messages == []

    other_process.stop()  # it dies: its connection, and with it its lock, is gone
    with side.runtime.unit_of_work() as uow:
        outcome = runner.run_handler(uow, side.services, handler, event.id, "message-1")
    assert outcome is runner.Outcome.DONE
    assert [str(m["To"]) for m in smtp_server.wait_for(1)] == ["elsewhere@example.com"]
    assert _runs(db, [event.id])[event.id].attempts == 2


def test_a_batch_delivered_again_while_another_live_process_works_on_it_keeps_its_claims(
        mail_app, smtp_server, db, side, other_process) -> None:
    from core.effects import handler_named
    from core.pipeline import runner

    handler = handler_named("send_test_email")
    [event] = _commit_test_emails(["batch-elsewhere@example.com"], side)
    _claimed_elsewhere(db, event.id, handler.name, "batch-1", other_process.token)
    with side.runtime.unit_of_work() as uow:
        outcome = runner.run_batch(uow, side.services, handler, [event.id], "batch-1")
    assert (outcome.done, [alone.event_id for alone in outcome.alone]) == (0, [event.id])
    # On its own message, the event waits for the live holder's claim to end.
    with side.runtime.unit_of_work() as uow, pytest.raises(runner.ClaimHeld):
        runner.run_handler(uow, side.services, handler, event.id, "alone-1")
    assert smtp_server.messages == []
    assert _runs(db, [event.id])[event.id].locked_until is not None


class _FailsOnce:
    """Wraps the mailer: its first e-mail is refused, or taken by the server before the worker
    "dies" (an exception) without writing "done"."""

    def __init__(self, mailer, *, server_takes_it: bool) -> None:
        self.mailer, self.server_takes_it, self.failed = mailer, server_takes_it, False

    def send(self, mail) -> None:
        if not self.failed:
            self.failed = True
            if self.server_takes_it:
                self.mailer.send(mail)
            raise OSError("connection reset")
        self.mailer.send(mail)


def _retried(side, handler_name: str, event_id, *, server_takes_it: bool) -> None:
    """Run a handler whose first attempt fails as `_FailsOnce` says, then again, to done."""
    from core.effects import handler_named
    from core.pipeline import runner

    services = side.services
    original = services.mailer
    services.mailer = _FailsOnce(original, server_takes_it=server_takes_it)
    handler = handler_named(handler_name)
    try:
        with side.runtime.unit_of_work() as uow, pytest.raises(OSError):
            runner.run_handler(uow, services, handler, event_id, "message-1")
        with side.runtime.unit_of_work() as uow:
            assert runner.run_handler(uow, services, handler, event_id,
                                      "message-2") == runner.Outcome.DONE
    finally:
        services.mailer = original


def _event_of(db, event_type: str):
    """The newest event of that type."""
    with system_session(db) as session:
        return session.execute(sa.select(Event.id).where(Event.type == event_type).order_by(
            Event.occurred_at.desc()).limit(1)).scalar_one()


@pytest.mark.parametrize("server_takes_it", [False, True], ids=["refused", "sent-then-died"])
def test_a_retried_verification_e_mail_carries_the_same_working_link(
        mail_app, smtp_server, db, side, server_takes_it) -> None:
    """The link's token is committed before the e-mail goes; a second attempt found it there and
    failed on the token's uniqueness for ever (the proof's chaos lost a verification e-mail that
    way after a worker was SIGKILLed). Every attempt now sends the same link, and it works."""
    from core.identity.models import Identity, Token
    from tests.support.flows import confirm, link_in, signup_therapist

    client = mail_app.test_client()
    assert signup_therapist(client, email="ada@harbour.example").status_code == 200
    event_id = _event_of(db, "USER_CREATED")
    _retried(side, "send_verification_email", event_id, server_takes_it=server_takes_it)
    received = smtp_server.wait_for(2 if server_takes_it else 1)
    links = {link_in(message, "/verify-email/") for message in received}
    assert len(links) == 1
    with system_session(db) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Token).where(
            Token.source_event_id == event_id)).scalar_one() == 1
    assert confirm(client, links.pop()).status_code == 302
    with system_session(db) as session:
        assert session.execute(sa.select(Identity.email_verified_at).where(
            Identity.email == "ada@harbour.example")).scalar_one() is not None


def test_a_retried_invitation_carries_the_same_working_link(mail_app, smtp_server, db,
                                                            side) -> None:
    """Each attempt at an invitation e-mail stored a new random link over the last; a copy the
    server had already taken (which mail clients fold with the retry's: same Message-ID) led
    to a dead link."""
    from tests.support.factories import practice
    from tests.support.flows import link_in, login, post_form

    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    therapist = mail_app.test_client()
    assert login(therapist, harbour.therapist_email).status_code == 302
    assert post_form(therapist, "/therapist/invitations", {"email": "new@client.example"},
                     page="/therapist").status_code == 302
    _retried(side, "send_invitation_email", _event_of(db, "INVITATION_SENT"),
             server_takes_it=True)
    links = {link_in(message, "/invite/") for message in smtp_server.wait_for(2)}
    assert len(links) == 1
    page = mail_app.test_client().get(links.pop())
    assert page.status_code == 200 and "Harbour Counselling invites you" in page.get_data(
        as_text=True)
