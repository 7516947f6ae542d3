"""GET /api/metrics and /admin/metrics as an operator uses them: the figures of the last rollup,
for admins only; a therapist's dashboard shows its own practice's figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core import clock
from core.audit import writer
from core.audit.models import AuditEntry
from core.identity import signup
from core.metrics import rollup
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from tests.support.activity import logs_in
from tests.support.factories import practice
from tests.support.flows import PASSWORD, csrf_token, login

ADMIN_EMAIL = "operator@platform.example"


@pytest.fixture
def platform(db, settings, monkeypatch):
    """Two practices and an admin, Harbour's client signed in, a few minutes ago (the rollup
    stays a minute behind the clock), rolled up once."""
    monkeypatch.setattr(clock, "now", lambda: datetime.now(UTC) - timedelta(minutes=5))
    harbour = practice(db, "Harbour", slug_hint="harbour")
    elm = practice(db, "Elm", slug_hint="elm")
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        signup.create_admin(uow, ADMIN_EMAIL, PASSWORD)
        uow.commit()
    logs_in(db, settings, harbour.client_email)
    monkeypatch.undo()
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        rollup.run(uow)
    return harbour, elm


def _as(app, email):
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def _denied(db) -> list[AuditEntry]:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        while writer.write_pending(uow):
            pass
    with system_session(db) as session:
        return list(session.execute(sa.select(AuditEntry).where(
            AuditEntry.type == "ACCESS_DENIED")).scalars())


def test_an_admin_gets_the_four_figures_and_their_age(app, platform) -> None:
    response = _as(app, ADMIN_EMAIL).get("/api/metrics?days=7")
    assert response.status_code == 200
    body = response.get_json()
    assert body["scope"] == "platform" and body["days"] == 7
    assert body["as_of"] is not None and body["age_seconds"] >= 0
    figures = body["figures"]
    assert figures["active_tenants"] == 1  # Elm: nobody signed in within 30 days
    assert figures["users_by_role"] == {"admin": 1, "client": 2, "therapist": 2}
    assert figures["onboarding_completion_rate"] == 1.0
    assert figures["active_users"] == 1
    signups = [s for s in body["series"] if s["metric"] == "signups"]
    assert all(len(series["points"]) == 7 for series in signups)
    assert {s["dimension"]: sum(p["value"] for p in s["points"]) for s in signups} == {
        "admin": 1, "client": 2, "therapist": 2}


def test_one_practices_figures(app, platform) -> None:
    harbour, _elm = platform
    body = _as(app, ADMIN_EMAIL).get(f"/api/metrics?tenant={harbour.tenant.id}").get_json()
    assert body["scope"] == str(harbour.tenant.id) and body["days"] == 30
    assert body["figures"]["users_by_role"] == {"client": 1, "therapist": 1}


@pytest.mark.parametrize(("query", "field"), [("days=14", "days"), ("days=seven", "days"),
                                              ("tenant=not-a-uuid", "tenant")])
def test_bad_parameters_are_a_clear_422(app, platform, query, field) -> None:
    response = _as(app, ADMIN_EMAIL).get(f"/api/metrics?{query}")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid" and field in error["fields"] and error["message"]


def test_a_bad_period_on_the_page_is_a_clear_422(app, platform) -> None:
    response = _as(app, ADMIN_EMAIL).get("/admin/metrics?days=8")
    assert response.status_code == 422
    assert "must be one of 7, 30, 90" in response.get_data(as_text=True)


def test_an_unknown_practice_is_a_404(app, platform) -> None:
    response = _as(app, ADMIN_EMAIL).get(
        "/api/metrics?tenant=00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_anyone_else_finds_nothing_and_is_audited(app, db, platform) -> None:
    harbour, _elm = platform
    for email in (harbour.therapist_email, harbour.client_email):
        client = _as(app, email)
        for path in ("/api/metrics", "/admin/metrics"):
            assert client.get(path).status_code == 404, (email, path)
    assert app.test_client().get("/api/metrics").status_code == 404
    denied = _denied(db)
    assert len([e for e in denied if e.details.get("path") == "/api/metrics"]) == 3
    assert len([e for e in denied if e.details.get("path") == "/admin/metrics"]) == 2


def test_the_admin_page_draws_accessible_charts_with_tables(app, platform) -> None:
    html = _as(app, ADMIN_EMAIL).get("/admin/metrics?days=90").get_data(as_text=True)
    assert html.count('role="img"') >= 5
    for title in ("Sign-ups per day, last 90 days", "Active people, last 90 days",
                  "People by role", "Clients through set-up", "Therapists through set-up"):
        assert title in html
    assert html.count("<table") == html.count('role="img"')
    assert "Figures as of" in html and 'data-testid="active-tenants">1<' in html
    assert "<script" not in html.split("<main", 1)[1].split("</main>", 1)[0]
    assert 'href="/admin/metrics"' in html  # the admin nav links here


def test_refresh_now_enqueues_a_rollup(app, db, monkeypatch, worker) -> None:
    monkeypatch.setattr(clock, "now", lambda: datetime.now(UTC) - timedelta(minutes=5))
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        signup.create_admin(uow, ADMIN_EMAIL, PASSWORD)
        uow.commit()
    monkeypatch.undo()
    client = _as(app, ADMIN_EMAIL)
    assert "Not rolled up yet" in client.get("/admin/metrics").get_data(as_text=True)
    token = csrf_token(client, "/admin/metrics")
    assert client.post("/admin/metrics/refresh", data={"days": "7"}).status_code == 400
    response = client.post("/admin/metrics/refresh", data={"csrf_token": token, "days": "7"})
    assert response.status_code == 302 and response.headers["Location"].endswith("?days=7")
    worker.drain()
    with system_session(db) as session:
        assert rollup.as_of(session) is not None
    assert "Figures as of" in client.get("/admin/metrics?days=7").get_data(as_text=True)


def test_a_therapist_sees_its_own_practices_figures(app, platform) -> None:
    harbour, elm = platform
    html = _as(app, harbour.therapist_email).get("/therapist").get_data(as_text=True)
    assert 'data-testid="figure-clients">1<' in html
    assert 'data-testid="figure-client-completion">100.0 %<' in html
    assert 'data-testid="figure-active-clients">1<' in html
    elm_html = _as(app, elm.therapist_email).get("/therapist").get_data(as_text=True)
    assert 'data-testid="figure-active-clients">0<' in elm_html


def test_refresh_now_with_the_broker_away_says_so_instead_of_failing(app, db) -> None:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        signup.create_admin(uow, ADMIN_EMAIL, PASSWORD)
        uow.commit()
    client = _as(app, ADMIN_EMAIL)
    token = csrf_token(client, "/admin/metrics")
    background = app.extensions["background"]

    def broker_away(actor_name: str, **options: object) -> None:
        raise ConnectionError("the broker is down")  # what a stopped RabbitMQ node gave proof

    real, background.enqueue = background.enqueue, broker_away
    try:
        response = client.post("/admin/metrics/refresh", data={"csrf_token": token})
    finally:
        background.enqueue = real
    assert response.status_code == 302
    page = client.get("/admin/metrics").get_data(as_text=True)
    assert "The workers cannot be reached just now" in page
