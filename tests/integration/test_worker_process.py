"""A real `dramatiq` worker process consumes the platform's messages over Redis."""

from __future__ import annotations

import pytest

from core.logs import request_id_var
from core.mail.test_email import request_test_email
from core.monitoring.checks import beat_scheduler
from tests.conftest import make_settings
from tests.support.apps import make_app
from tests.support.processes import dramatiq_worker, platform_env, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_app(db, database_url, instance_dir, redis_url, smtp_server):
    settings = make_settings(database_url, instance_dir, redis_url=redis_url,
                             broker_url=redis_url, smtp_url=smtp_server.url)
    return make_app(settings, db)


def test_worker_process_sends_the_mail_and_carries_the_request_id(
    redis_app, database_url, redis_url, smtp_server, tmp_path
) -> None:
    env = platform_env(DATABASE_URL=database_url, REDIS_URL=redis_url,
                       SMTP_URL=smtp_server.url, INSTANCE_PATH=str(tmp_path))
    worker = dramatiq_worker(env, tmp_path / "worker.log")
    try:
        services = redis_app.extensions["services"]
        wait_until(lambda: services.cache.alive("workers"), 30, "worker heartbeat")
        # Healthy needs every part: the scheduler's leader too (its heartbeat, as it writes it).
        beat_scheduler(services.cache, "scheduler-of-this-test", 15)
        health = redis_app.test_client().get("/api/health").get_json()
        assert health["status"] == "healthy", health

        token = request_id_var.set("req-from-the-test-0001")
        try:
            from assembly import worker_side_of

            with worker_side_of(redis_app).runtime.unit_of_work() as uow:
                event = request_test_email(uow, "Operator@Example.com")
                uow.commit()
        finally:
            request_id_var.reset(token)

        [message] = smtp_server.wait_for(1)
        assert message["To"] == "operator@example.com"
        assert message["Message-ID"].strip().startswith(f"<{event.id}.send_test_email@")
        assert message.get_body(("plain",)).get_content().startswith("This is a test message")
        assert message.get_body(("html",)) is not None
        wait_until(lambda: "req-from-the-test-0001" in worker.output(), 10,
                   "request id in the worker's log lines")
    finally:
        worker.stop()
    assert "Traceback" not in worker.output()


def test_a_worker_process_names_itself_on_its_claims_and_is_known_dead_once_killed(
    redis_app, db, database_url, redis_url, smtp_server, tmp_path
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("a worker process's liveness is a PostgreSQL advisory lock")
    from assembly import worker_side_of
    from core.adapters import liveness
    from core.events.models import HandlerRun
    from core.scoping import system_session

    env = platform_env(DATABASE_URL=database_url, REDIS_URL=redis_url,
                       SMTP_URL=smtp_server.url, INSTANCE_PATH=str(tmp_path))
    worker = dramatiq_worker(env, tmp_path / "worker.log", processes=2)
    try:
        with worker_side_of(redis_app).runtime.unit_of_work() as uow:
            event = request_test_email(uow, "claimed@example.com")
            uow.commit()
        smtp_server.wait_for(1)

        def done_run() -> HandlerRun | None:
            with system_session(db) as session:
                run = session.get(HandlerRun, (event.id, "send_test_email"))
                return run if run is not None and run.status == "done" else None

        run = wait_until(done_run, 10, "the handler run marked done")
        token = run.holder
        assert token is not None, "the claim names no worker process"
        with system_session(db) as session:
            assert liveness.alive(session, token)  # the process that sent it lives on
    finally:
        worker.kill()  # SIGKILL, the whole group: no shutdown hook runs

    def released() -> bool:
        with system_session(db) as session:
            return not liveness.alive(session, token)

    wait_until(released, 10, "the killed worker's liveness lock released")
