"""/api/health checks every part (auth, storage, scheduler, schema …), tells details only to
those allowed, and /api/health/ready answers for load balancers."""

from __future__ import annotations

import json
import time

import pytest
from alembic import command

from core.adapters.files import LocalFileStore
from core.db import Database
from core.identity import signup
from core.monitoring.checks import PROBE_KEY, SCHEDULER_HEARTBEAT_KEY, beat_scheduler
from core.scoping import TenantContext
from core.uow import UnitOfWork
from tests.conftest import DETAILS, make_settings
from tests.support.apps import make_app
from tests.support.factories import practice
from tests.support.flows import PASSWORD, login
from web.cli import alembic_config

ADMIN_EMAIL = "operator@platform.example"


def _checks(client, **kwargs):
    response = client.get("/api/health", **kwargs)
    return response, response.get_json()["checks"]


def test_public_answer_has_status_and_latency_only(client) -> None:
    response, checks = _checks(client)
    assert response.status_code == 200
    assert set(checks) == {"database", "auth", "storage", "cache", "broker", "workers",
                           "scheduler", "outbox", "migrations", "audit_sink"}
    for check in checks.values():
        assert set(check) == {"status", "latency_ms"}
    _, wrong = _checks(client, headers={"Authorization": "Bearer not-the-token"})
    assert all(set(check) == {"status", "latency_ms"} for check in wrong.values())
    _, detailed = _checks(client, headers=DETAILS)
    assert all(set(check) == {"status", "latency_ms", "detail"} for check in detailed.values())


def test_an_admin_session_sees_the_details_and_others_do_not(db, app, client) -> None:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        signup.create_admin(uow, ADMIN_EMAIL, PASSWORD)
        uow.commit()
    harbour = practice(db, "Harbour", slug_hint="harbour")
    assert login(client, harbour.therapist_email).status_code == 302
    _, checks = _checks(client)
    assert all("detail" not in check for check in checks.values())
    admin = app.test_client()
    assert login(admin, ADMIN_EMAIL).status_code == 302
    _, checks = _checks(admin)
    assert checks["database"]["detail"]
    assert checks["auth"]["status"] == "pass"
    assert "signing key loaded" in checks["auth"]["detail"]


def test_auth_storage_and_migrations_pass_on_a_sound_platform(app, client) -> None:
    _, checks = _checks(client, headers=DETAILS)
    for name in ("database", "auth", "storage", "migrations"):
        assert checks[name]["status"] == "pass", checks[name]
    store = app.extensions["services"].files
    assert not store.exists(PROBE_KEY)  # the probe cleans up after itself


class UnwritableStore(LocalFileStore):
    def writer(self, key):
        raise PermissionError(f"read-only file system: {key}")


def test_a_failing_file_store_is_degraded_not_down(app, client) -> None:
    services = app.extensions["services"]
    services.files = UnwritableStore(services.files.root)
    response, checks = _checks(client, headers=DETAILS)
    assert response.status_code == 200 and response.get_json()["status"] == "degraded"
    assert checks["storage"]["status"] == "fail"
    assert "read-only file system" in checks["storage"]["detail"]


def test_scheduler_is_failing_without_a_heartbeat_and_passing_with_one(app, client) -> None:
    cache = app.extensions["services"].cache
    response, checks = _checks(client, headers=DETAILS)
    assert checks["scheduler"]["status"] == "fail"
    assert response.status_code == 200 and response.get_json()["status"] == "degraded"
    beat_scheduler(cache, "host:1:leader", 5)
    _, checks = _checks(client, headers=DETAILS)
    assert checks["scheduler"]["status"] == "pass"
    assert "host:1:leader" in checks["scheduler"]["detail"]
    # Silent for more than two of its intervals: dead.
    stale = {"at": time.time() - 11, "every": 5, "leader": "host:1:leader"}
    cache.set(SCHEDULER_HEARTBEAT_KEY, json.dumps(stale).encode(), 60)
    _, checks = _checks(client, headers=DETAILS)
    assert checks["scheduler"]["status"] == "fail"
    assert "last heard 11s ago" in checks["scheduler"]["detail"]


def test_ready_checks_the_database_and_the_schema_only(client) -> None:
    response = client.get("/api/health/ready", headers=DETAILS)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy"
    assert set(body["checks"]) == {"database", "migrations"}


@pytest.fixture
def behind_head(tmp_path):
    """A SQLite platform whose schema stopped one revision short of the code's head."""
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    settings = make_settings(url, tmp_path)
    database = Database(url)
    app = make_app(settings, database)
    with app.app_context():
        command.upgrade(alembic_config(), "head")
        command.downgrade(alembic_config(), "-1")
    yield app
    database.dispose()


def test_a_schema_behind_head_is_unhealthy_and_not_ready(behind_head) -> None:
    client = behind_head.test_client()
    for path in ("/api/health", "/api/health/ready"):
        response = client.get(path, headers=DETAILS)
        assert response.status_code == 503, path
        body = response.get_json()
        assert body["status"] == "unhealthy"
        assert body["checks"]["migrations"]["status"] == "fail"
        assert "run the release step" in body["checks"]["migrations"]["detail"]


def test_live_never_touches_the_database_pool(app, client) -> None:
    engine = app.extensions["services"].db.engine
    before = engine.pool.checkedout(), engine.pool.checkedin()
    assert client.get("/api/health/live").status_code == 200
    assert (engine.pool.checkedout(), engine.pool.checkedin()) == before
