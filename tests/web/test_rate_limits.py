"""The seed's limits: per address before login, per account after, tighter on log-in forms;
each breach is an audit entry."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.audit.models import AuditEntry
from core.scoping import system_session
from tests.support.apps import make_app
from tests.support.factories import practice
from tests.support.flows import csrf_token, login
from tests.support.workers import EmbeddedWorker


@pytest.fixture
def limited(settings, db):
    def build(**limits):
        configured = settings.with_overrides(**limits)
        return make_app(configured, db)

    return build


def test_login_form_posts_are_limited_per_address_and_audited(limited, db):
    # A short window: the entry is written when the window ends, with its count.
    app = limited(rate_limit_auth_endpoints="3 per 2 seconds")
    worker = EmbeddedWorker(app)
    try:
        client = app.test_client()
        token = csrf_token(client, "/login")
        statuses = [client.post("/login", data={"csrf_token": token, "email": "x@example.com",
                                                "password": "wrong wrong"}).status_code
                    for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        assert client.get("/login").status_code == 200  # reading the form is not limited
        worker.drain()
    finally:
        worker.stop()
    with system_session(db) as session:
        rows = session.execute(sa.select(AuditEntry).where(
            AuditEntry.type == "RATE_LIMIT_EXCEEDED")).scalars().all()
    assert len(rows) == 1 and rows[0].details["path"] == "/login"
    assert rows[0].details["limit"].startswith("3 per 2 second")
    assert rows[0].details["count"] == 1


def test_logged_in_limits_are_per_account(limited, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    elm = practice(db, "Elm Street", slug_hint="elm")
    app = limited(rate_limit_authenticated="5 per minute", rate_limit_anonymous="50 per minute")
    ada, grace = app.test_client(), app.test_client()
    login(ada, harbour.therapist_email)
    login(grace, elm.therapist_email)
    seen = [ada.get("/therapist") for _ in range(6)]
    assert [r.status_code for r in seen[:5]] == [200] * 5
    assert seen[5].status_code == 429
    assert seen[4].headers["X-RateLimit-Limit"] == "5"
    assert "Retry-After" in seen[5].headers
    assert grace.get("/therapist").status_code == 200  # another account has its own budget


def test_a_flood_of_429s_is_one_audit_entry_per_client_and_window_with_its_count(limited, db):
    app = limited(rate_limit_anonymous="5 per 3 seconds")
    worker = EmbeddedWorker(app)
    try:
        flooder, bystander = app.test_client(), app.test_client()
        statuses = [flooder.get("/").status_code for _ in range(30)]
        assert statuses == [200] * 5 + [429] * 25
        other = bystander.get("/", environ_base={"REMOTE_ADDR": "127.0.0.2"})
        assert other.status_code == 200  # another address has its own budget
        worker.drain()
    finally:
        worker.stop()
    with system_session(db) as session:
        rows = session.execute(sa.select(AuditEntry).where(
            AuditEntry.type == "RATE_LIMIT_EXCEEDED")).scalars().all()
    assert len(rows) == 1
    assert rows[0].details["count"] == 25 and rows[0].ip == "127.0.0.1"
