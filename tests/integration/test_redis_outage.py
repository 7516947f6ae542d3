"""What a Redis outage does to the web tier: pages keep serving (the cache reads the database),
log-in attempts stay limited (in each process's memory), health says degraded, logs stay
readable; and once Redis is back, limits and cache resume by themselves."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from bench.ports import restartable_port
from core.audit.models import AuditEntry
from core.identity.models import Account
from core.scoping import system_session
from tests.conftest import make_settings
from tests.support.apps import make_app
from tests.support.factories import practice
from tests.support.flows import csrf_token, login
from tests.support.processes import wait_until
from tests.support.redis_server import PrivateRedis
from tests.support.workers import EmbeddedWorker

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis():
    server = PrivateRedis(restartable_port())
    server.start()
    yield server
    server.kill()


def test_a_rate_limit_outage_is_one_warning_then_one_recovery_line(
        private_redis, db, database_url, instance_dir, caplog):
    settings = make_settings(database_url, instance_dir, redis_url=private_redis.url)
    client = make_app(settings, db).test_client()
    assert client.get("/").status_code == 200
    caplog.set_level(logging.INFO)
    caplog.clear()

    private_redis.kill()
    assert [client.get("/").status_code for _ in range(5)] == [200] * 5
    limiter_lines = [r for r in caplog.records if "rate-limit" in r.getMessage()
                     or r.name == "flask-limiter"]
    assert [r.levelname for r in limiter_lines] == ["WARNING"], [r.getMessage()
                                                                for r in limiter_lines]
    assert "unavailable" in limiter_lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)  # no traceback per request

    caplog.clear()
    private_redis.start()
    # Redis is tried again a moment after its last failure (core.adapters.redis_link).
    wait_until(lambda: "X-RateLimit-Remaining" in client.get("/").headers, 10,
               "limits to apply again")
    recovered = [r.getMessage() for r in caplog.records if "rate-limit" in r.getMessage()]
    assert recovered == ["rate-limit storage is back; limits apply again"]


def _cache_check(client) -> str:
    return client.get("/api/health").get_json()["checks"]["cache"]["status"]


def test_without_redis_pages_serve_log_ins_stay_limited_and_everything_resumes_by_itself(
        private_redis, db, database_url, instance_dir):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    settings = make_settings(database_url, instance_dir, redis_url=private_redis.url,
                             rate_limit_auth_endpoints="3 per minute")
    app = make_app(settings, db)
    worker = EmbeddedWorker(app)
    regions = app.extensions["services"].regions
    visitor, person = app.test_client(), app.test_client()
    login(person, harbour.therapist_email)
    assert person.get("/therapist").status_code == 200
    token = csrf_token(visitor, "/login")

    private_redis.kill()
    assert visitor.get("/").status_code == 200
    assert person.get("/therapist").status_code == 200  # read from the database instead
    attempts = [visitor.post("/login", data={"csrf_token": token, "email": "x@example.com",
                                             "password": "guess"}).status_code
                for _ in range(6)]
    assert attempts == [401, 401, 401, 429, 429, 429]  # counted in this process's memory
    health = visitor.get("/api/health").get_json()
    assert health["status"] == "degraded" and health["checks"]["cache"]["status"] == "fail"

    private_redis.start()
    wait_until(lambda: "X-RateLimit-Remaining" in visitor.get("/").headers, 10,
               "limits to apply again")
    assert _cache_check(visitor) == "pass"
    hits = regions.counts()["sessions"]["hits"]
    person.get("/therapist")
    person.get("/therapist")
    assert regions.counts()["sessions"]["hits"] > hits  # the cache serves again

    try:
        worker.drain()
    finally:
        worker.stop()
    with system_session(db) as session:
        refusals = session.execute(sa.select(AuditEntry).where(
            AuditEntry.type == "RATE_LIMIT_EXCEEDED")).scalars().all()
    assert len(refusals) == 1  # not one entry per refused attempt, outage or not


def test_a_change_made_while_redis_was_silent_is_not_hidden_by_what_it_kept(
        private_redis, db, database_url, instance_dir):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    settings = make_settings(database_url, instance_dir, redis_url=private_redis.url)
    app = make_app(settings, db)
    person = app.test_client()
    login(person, harbour.client_email)
    assert "Hello, Client of Harbour" in person.get("/client").get_data(as_text=True)

    # Redis keeps the cached name but goes silent; the first command that finds out makes the
    # process stop sending (for longer than this test takes: the health check's probe, which
    # always tries, is what finds it back).
    app.extensions["services"].cache.link.retry_seconds = 600
    private_redis.pause()
    assert "Hello, Client of Harbour" in person.get("/client").get_data(as_text=True)
    with system_session(db) as session:  # its invalidation cannot be sent now
        session.get(Account, harbour.client.id).display_name = "Renamed Client"
        session.commit()
    assert "Hello, Renamed Client" in person.get("/client").get_data(as_text=True)

    private_redis.resume()
    wait_until(lambda: _cache_check(person) == "pass", 10, "redis to answer again")
    for _ in range(3):  # once Redis answers, the invalidation that failed is sent first
        assert "Hello, Renamed Client" in person.get("/client").get_data(as_text=True)
