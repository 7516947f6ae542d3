"""The pipeline with real broker and worker processes: nothing lost, nothing doubled.

* 1,000 e-mails while the worker is SIGKILLed several times: exactly 1,000 distinct arrive
  (Redis and RabbitMQ).
* The broker is unreachable at commit: the action succeeds; once the broker is back, the relay
  delivers every event.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from assembly import worker_side_of
from core.events.models import DeadLetter, Event, HandlerRun
from core.mail.test_email import request_test_email
from tests.conftest import IN_CI, TEST_RABBITMQ_URL, make_settings
from tests.support.apps import make_app
from tests.support.processes import dramatiq_worker, platform_env, scheduler, wait_until
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

EMAILS = 1000


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request, redis_url):
    if request.param == "redis":
        return redis_url
    if not TEST_RABBITMQ_URL:
        if IN_CI:
            pytest.fail("CI must set TEST_RABBITMQ_URL")
        pytest.skip("needs TEST_RABBITMQ_URL")
    return TEST_RABBITMQ_URL


def _worker_env(database_url, redis_url, broker_url, smtp_url, instance):
    return platform_env(
        DATABASE_URL=database_url, REDIS_URL=redis_url, BROKER_URL=broker_url, SMTP_URL=smtp_url,
        INSTANCE_PATH=str(instance), LOG_LEVEL="WARNING",
        # Recover a killed worker's messages in seconds rather than a minute: a short heartbeat
        # timeout, and maintenance on 20% of broker commands (the default is 0.1%).
        BROKER_HEARTBEAT_TIMEOUT_MS="2000", BROKER_MAINTENANCE_CHANCE="200000",
    )


def _done(db) -> int:
    with db.session() as session:
        return session.execute(sa.select(sa.func.count()).select_from(HandlerRun).where(
            HandlerRun.status == "done")).scalar_one()


def _distinct_message_ids(smtp_server) -> set[str]:
    with smtp_server.lock:
        return {str(m["Message-ID"]).strip() for m in smtp_server.messages}


def test_1000_emails_survive_repeated_sigkills(
    db, database_url, instance_dir, redis_url, broker_url, smtp_server, tmp_path
):
    settings = make_settings(database_url, instance_dir, redis_url=redis_url,
                             broker_url=broker_url, smtp_url=smtp_server.url)
    app = make_app(settings, db)
    side = worker_side_of(app)
    side.broker.flush_all()
    env = _worker_env(database_url, redis_url, broker_url, smtp_server.url, tmp_path)
    log = tmp_path / "worker.log"
    worker = dramatiq_worker(env, log, threads=8)
    kills = 0
    try:
        for i in range(EMAILS):
            with side.runtime.unit_of_work() as uow:
                request_test_email(uow, f"person{i}@example.com")
                uow.commit()
        for threshold in (150, 450, 750):
            wait_until(lambda t=threshold: len(smtp_server.messages) >= t, 120,
                       f"{threshold} e-mails before the next kill")
            worker.kill()
            kills += 1
            worker = dramatiq_worker(env, log, threads=8)
        wait_until(lambda: len(_distinct_message_ids(smtp_server)) >= EMAILS, 180,
                   "every e-mail")
        # Once every effect is marked done, a message delivered again finds it done: no send
        # can still be on its way.
        wait_until(lambda: _done(db) >= EMAILS, 60, "every e-mail's effect marked done")
    finally:
        worker.stop()
    distinct = _distinct_message_ids(smtp_server)
    assert len(distinct) == EMAILS and kills == 3
    # At-least-once delivery: a message whose mail left before the kill but whose completion
    # was not yet committed is sent again, with the same Message-ID. That window is small.
    duplicates = len(smtp_server.messages) - EMAILS
    assert duplicates <= kills * 8, f"{duplicates} duplicate sends for {kills} kills"
    print(f"\n{broker_url.split(':')[0]}: {EMAILS} distinct e-mails, {duplicates} resent "
          f"after {kills} SIGKILLs")
    with db.session() as session:
        done = session.execute(sa.select(sa.func.count()).select_from(HandlerRun).where(
            HandlerRun.status == "done")).scalar_one()
        assert done == EMAILS
        assert session.execute(sa.select(sa.func.count()).select_from(DeadLetter)).scalar_one() == 0


def test_broker_down_at_commit_then_relay_delivers_everything(
    db, database_url, instance_dir, redis_url, smtp_server, tmp_path
):
    parts = urlsplit(redis_url)
    proxy = TcpProxy(parts.hostname, parts.port or 6379)
    proxied = f"redis://127.0.0.1:{proxy.port}{parts.path}"
    settings = make_settings(database_url, instance_dir, redis_url=redis_url,
                             broker_url=proxied, smtp_url=smtp_server.url)
    side = worker_side_of(make_app(settings, db))
    processes = []
    try:
        # The broker is unreachable: every commit still succeeds.
        for i in range(20):
            with side.runtime.unit_of_work() as uow:
                request_test_email(uow, f"late{i}@example.com")
                uow.commit()
        with db.session() as session:
            assert session.execute(sa.select(sa.func.count()).where(
                Event.dispatched_at.is_(None))).scalar_one() == 20

        proxy.restore()
        env = _worker_env(database_url, redis_url, proxied, smtp_server.url, tmp_path)
        processes = [dramatiq_worker(env, tmp_path / "worker.log"),
                     scheduler(env, tmp_path / "scheduler.log")]
        smtp_server.wait_for(20, timeout=60)
        wait_until(lambda: _done(db) >= 20, 60, "every e-mail's effect marked done")
    finally:
        for process in processes:
            process.stop()
        proxy.close()
    assert sorted(str(m["To"]) for m in smtp_server.messages) == sorted(
        f"late{i}@example.com" for i in range(20))
    with db.session() as session:
        assert session.execute(sa.select(sa.func.count()).where(
            Event.dispatched_at.is_(None))).scalar_one() == 0
