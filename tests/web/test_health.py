"""/api/health tells an operator what is down, quickly, and never hangs."""

from __future__ import annotations

import socket
import time

import pytest

from core.db import Database
from core.monitoring.checks import beat_scheduler
from tests.conftest import DETAILS, free_port, make_settings
from tests.support.apps import make_app


def test_live_touches_no_backend(client) -> None:
    response = client.get("/api/health/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "alive"}


def test_embedded_platform_with_its_worker_is_healthy(app, client, worker) -> None:
    worker.drain()
    # The embedded scheduler's heartbeat (assembly.embedded starts it beside the worker).
    beat_scheduler(app.extensions["services"].cache, "embedded", 5)
    body = client.get("/api/health", headers=DETAILS).get_json()
    assert body["status"] == "healthy", body
    assert set(body["checks"]) >= {"database", "auth", "storage", "cache", "broker", "workers",
                                   "scheduler", "outbox", "migrations"}
    for check in body["checks"].values():
        assert set(check) == {"status", "latency_ms", "detail"}
        assert check["status"] == "pass"


def test_without_a_running_worker_the_platform_is_degraded(client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["workers"]["status"] == "warn"


@pytest.fixture
def blackhole():
    """A TCP port that accepts connections and never answers (a hung Redis)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server.getsockname()[1]
    server.close()


def _app_with(settings_db, db_url, instance, **overrides):
    settings = make_settings(db_url, instance, **overrides)
    return make_app(settings, settings_db)


def test_redis_down_is_reported_at_once_and_pages_still_work(db, database_url, instance_dir):
    port = free_port()  # nothing listens: connection refused
    app = _app_with(db, database_url, instance_dir, redis_url=f"redis://127.0.0.1:{port}/0",
                    broker_url=f"redis://127.0.0.1:{port}/0")
    client = app.test_client()
    response = client.get("/api/health")
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "fail"
    assert body["checks"]["broker"]["status"] == "fail"
    assert body["checks"]["database"]["status"] == "pass"
    # Rate limiting fails open: the home page still renders.
    assert client.get("/").status_code == 200


def test_hung_redis_is_reported_within_the_health_timeout(db, database_url, instance_dir,
                                                          blackhole):
    app = _app_with(db, database_url, instance_dir, redis_url=f"redis://127.0.0.1:{blackhole}/0",
                    broker_url=f"redis://127.0.0.1:{blackhole}/0", health_timeout_seconds=1.5)
    started = time.monotonic()
    response = app.test_client().get("/api/health")
    elapsed = time.monotonic() - started
    body = response.get_json()
    assert elapsed < 3.0, f"health took {elapsed:.1f}s"
    assert body["checks"]["cache"]["status"] == "fail"
    assert body["checks"]["broker"]["status"] == "fail"
    assert body["status"] == "degraded"


def test_database_down_is_unhealthy_503(database_url, instance_dir):
    port = free_port()
    dead = Database(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
    settings = make_settings(dead.url, instance_dir)
    app = make_app(settings, dead)
    started = time.monotonic()
    response = app.test_client().get("/api/health", headers=DETAILS)
    assert time.monotonic() - started < 3.0
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["status"] == "fail"
    assert "connection" in body["checks"]["database"]["detail"].lower()
    dead.dispose()


def test_a_database_role_that_skips_row_level_security_is_degraded(
        db, admin_database_url, instance_dir) -> None:
    """The test suite connects as a plain role; TEST_DATABASE_URL's role is a superuser."""
    admin_db = Database(admin_database_url)
    try:
        app = _app_with(admin_db, admin_database_url, instance_dir)
        body = app.test_client().get("/api/health", headers=DETAILS).get_json()
    finally:
        admin_db.dispose()
    assert body["status"] == "degraded"
    database = body["checks"]["database"]
    assert database["status"] == "warn" and "superuser" in database["detail"]
    assert "row-level security does not apply" in database["detail"]
