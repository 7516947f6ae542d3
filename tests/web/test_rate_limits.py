"""The seed's limits: per address before login, per account and per practice after, tighter on
log-in forms (per address and per target e-mail); headers on every response; each breach is an
audit entry. Every test runs on both counters: process memory and Redis."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from core.audit.models import AuditEntry
from core.scoping import system_session
from tests.support.apps import make_app
from tests.support.factories import practice
from tests.support.flows import csrf_token, login, post_form
from tests.support.workers import EmbeddedWorker


@pytest.fixture(params=["memory", "redis"])
def limited(request, settings, db):
    """Apps with the given limits, counted in process memory (embedded mode) or in Redis (one
    Lua script per request)."""
    storage = {"redis_url": request.getfixturevalue("redis_url")} \
        if request.param == "redis" else {}

    def build(**limits):
        configured = settings.with_overrides(**storage, **limits)
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


# -- each scope's limit, exactly ------------------------------------------------------------------

SEED_LIMITS = {"rate_limit_authenticated": "100 per minute",
               "rate_limit_anonymous": "20 per minute",
               "rate_limit_auth_endpoints": "10 per minute"}


def _limit_headers(response) -> tuple[str, str]:
    return response.headers["X-RateLimit-Limit"], response.headers["X-RateLimit-Remaining"]


def test_the_101st_request_of_an_account_in_a_minute_is_refused(limited, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    app = limited(**{**SEED_LIMITS, "rate_limit_anonymous": "50 per minute"})
    client = app.test_client()
    assert login(client, harbour.therapist_email).status_code == 302  # anonymous requests
    statuses = [client.get("/api/notifications").status_code for _ in range(100)]
    assert statuses == [200] * 100
    refused = client.get("/api/notifications")
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert _limit_headers(refused) == ("100", "0")
    assert 0 < int(refused.headers["Retry-After"]) <= 60


def test_the_21st_anonymous_request_is_refused_and_ipv6_counts_per_64(limited, db):
    app = limited(**SEED_LIMITS)
    client = app.test_client()
    home = "2001:db8:1:2::"
    statuses = [client.get("/", environ_base={"REMOTE_ADDR": f"{home}{n:x}"}).status_code
                for n in range(1, 21)]
    assert statuses == [200] * 20  # 20 addresses of one /64: one budget
    refused = client.get("/", environ_base={"REMOTE_ADDR": f"{home}ffff"})
    assert refused.status_code == 429 and "Too many requests" in refused.get_data(as_text=True)
    other_network = client.get("/", environ_base={"REMOTE_ADDR": "2001:db8:1:3::1"})
    assert other_network.status_code == 200
    assert client.get("/", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200


def _post_login(client, token: str, email: str, address: str):
    return client.post("/login", data={"csrf_token": token, "email": email,
                                       "password": "not the password"},
                       environ_base={"REMOTE_ADDR": address})


def test_the_11th_log_in_attempt_from_one_address_is_refused(limited, db):
    app = limited(**{**SEED_LIMITS, "rate_limit_anonymous": "100 per minute"})
    client = app.test_client()
    token = csrf_token(client, "/login")
    statuses = [_post_login(client, token, f"person{n}@example.com", "198.51.100.1").status_code
                for n in range(10)]
    assert statuses == [401] * 10
    refused = _post_login(client, token, "someone.else@example.com", "198.51.100.1")
    assert refused.status_code == 429
    assert _limit_headers(refused) == ("10", "0")
    # The form itself is still served, and another address has its own budget.
    assert client.get("/login", environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code == 200
    assert _post_login(client, token, "x@example.com", "198.51.100.2").status_code == 401


def test_the_11th_log_in_attempt_at_one_address_from_many_is_refused(limited, db):
    app = limited(**{**SEED_LIMITS, "rate_limit_anonymous": "100 per minute"})
    client = app.test_client()
    token = csrf_token(client, "/login")
    target = "Ada@Harbour.example"
    statuses = [_post_login(client, token, target, f"203.0.113.{n}").status_code
                for n in range(1, 11)]
    assert statuses == [401] * 10
    # The same address, written differently, from an address not seen before.
    refused = _post_login(client, token, " ada@harbour.example ", "203.0.113.200")
    assert refused.status_code == 429
    assert _post_login(client, token, "grace@harbour.example", "203.0.113.201").status_code \
        == 401


def test_a_practice_shares_one_budget_across_its_accounts(limited, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    _set_practice_budget(db, harbour.tenant.id, 6)
    app = limited(**SEED_LIMITS)
    therapist, client = app.test_client(), app.test_client()
    login(therapist, harbour.therapist_email)
    login(client, harbour.client_email)
    seen = [(therapist if n % 2 else client).get("/api/notifications") for n in range(6)]
    assert [r.status_code for r in seen] == [200] * 6
    assert _limit_headers(seen[-1]) == ("6", "0")  # the practice's is closest to its limit
    assert therapist.get("/api/notifications").status_code == 429
    assert client.get("/api/notifications").status_code == 429
    elm = practice(db, "Elm Street", slug_hint="elm")
    other = app.test_client()
    login(other, elm.therapist_email)
    assert other.get("/api/notifications").status_code == 200  # another practice's budget


def _set_practice_budget(db, tenant_id, per_minute) -> None:
    from core.tenancy.models import Tenant

    with system_session(db) as session:
        session.get(Tenant, tenant_id).requests_per_minute = per_minute
        session.commit()


# -- headers --------------------------------------------------------------------------------------

def test_every_response_carries_the_limit_headers_and_only_a_429_a_retry_after(limited, db):
    app = limited(**SEED_LIMITS)
    client = app.test_client()
    ok = client.get("/")
    missing = client.get("/no/such/page")
    invalid = post_form(client, "/signup", {"practice_name": "", "display_name": "",
                                            "email": "not an address", "password": "x"})
    assert (ok.status_code, missing.status_code, invalid.status_code) == (200, 404, 422)
    remaining = []
    for response in (ok, missing, invalid):
        assert response.headers["X-RateLimit-Limit"] in ("20", "10")
        assert int(response.headers["X-RateLimit-Reset"]) > time.time()
        assert "Retry-After" not in response.headers
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining[0] == 19 and remaining[1] == 18
    # The sign-up post drew on the address's budget and on the tighter form budget: the
    # closest to its limit is shown.
    assert invalid.headers["X-RateLimit-Limit"] == "10" and remaining[2] == 9


def test_rate_limit_status_shows_the_budgets_without_spending_one(limited, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    app = limited(**SEED_LIMITS)
    client = app.test_client()
    anonymous = [client.get("/api/rate-limit-status").get_json() for _ in range(5)]
    # Nothing spent: the same budgets each time. (An unused window has not started, so its
    # reset is a window from now and moves on with the clock.)
    assert _without_reset(anonymous[0]) == _without_reset(anonymous[-1])
    assert all(time.time() < scope["reset"] <= time.time() + scope["window_seconds"] + 1
               for answer in anonymous for scope in answer["scopes"])
    [address] = anonymous[0]["scopes"]
    assert (address["scope"], address["limit"], address["remaining"]) == ("address", 20, 20)
    client.get("/")
    after = client.get("/api/rate-limit-status")
    assert after.get_json()["scopes"][0]["remaining"] == 19
    assert after.headers["X-RateLimit-Remaining"] == "19"
    login(client, harbour.therapist_email)
    scopes = {s["scope"]: s for s in client.get("/api/rate-limit-status").get_json()["scopes"]}
    assert (scopes["account"]["limit"], scopes["account"]["remaining"]) == (100, 100)
    assert (scopes["practice"]["limit"], scopes["practice"]["window_seconds"]) == (1000, 60)


# -- a practice's budget, set by an admin -------------------------------------------------------

def _admin(db, email: str = "root@platform.example") -> str:
    from core.identity.signup import create_admin
    from core.uow import UnitOfWork
    from tests.support.flows import PASSWORD

    with UnitOfWork(db) as uow:
        create_admin(uow, email, PASSWORD)
        uow.commit()
    return email


def test_an_admins_practice_limit_applies_on_the_next_request_of_another_process(
        settings, db, redis_url):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    shared = settings.with_overrides(redis_url=redis_url, **SEED_LIMITS)
    admin_process, therapist_process = make_app(shared, db), make_app(shared, db)
    worker = EmbeddedWorker(admin_process)
    admin, therapist = admin_process.test_client(), therapist_process.test_client()
    login(admin, _admin(db))
    login(therapist, harbour.therapist_email)
    assert therapist.get("/api/notifications").headers["X-RateLimit-Limit"] == "100"

    page = f"/admin/practices/{harbour.tenant.id}"
    assert "1,000 requests per minute" in admin.get(page).get_data(as_text=True)
    saved = post_form(admin, f"{page}/limits", {"requests_per_minute": "3"}, page=page)
    assert saved.status_code == 302
    assert 'data-testid="practice-limit">3<' in admin.get(page).get_data(as_text=True)

    seen = [therapist.get("/api/notifications") for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert _limit_headers(seen[0]) == ("3", "2")

    try:
        worker.drain()
    finally:
        worker.stop()
    with system_session(db) as session:
        [entry] = session.execute(sa.select(AuditEntry).where(
            AuditEntry.type == "PRACTICE_LIMIT_CHANGED")).scalars().all()
    assert entry.tenant_id == harbour.tenant.id
    assert (entry.details["from"], entry.details["to"]) == (None, 3)

    post_form(admin, f"{page}/limits", {"requests_per_minute": ""}, page=page)
    assert therapist.get("/api/rate-limit-status").get_json()["scopes"][1]["limit"] == 1000


def test_a_practice_limit_must_be_a_positive_whole_number(settings, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    admin = make_app(settings, db).test_client()
    login(admin, _admin(db))
    page = f"/admin/practices/{harbour.tenant.id}"
    refused = post_form(admin, f"{page}/limits", {"requests_per_minute": "0"}, page=page)
    assert refused.status_code == 422
    assert "at least 1" in refused.get_data(as_text=True)


def _without_reset(status: dict) -> dict:
    return {**status, "scopes": [{k: v for k, v in scope.items() if k != "reset"}
                                 for scope in status["scopes"]]}
