"""What a Redis outage does to the web tier: pages keep serving, logs stay readable."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import free_port, make_settings
from tests.support.apps import make_app
from tests.support.processes import wait_until
from tests.support.redis_server import PrivateRedis

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis():
    server = PrivateRedis(free_port())
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
