"""One map turns every kind of domain error into its status, as a page or as the JSON envelope:
a view that forgets a `try` can no longer answer 500. Also: the request's unit of work is
committed once, by the boundary, only for responses that are not errors."""

from __future__ import annotations

import html
import uuid

import pytest
import sqlalchemy as sa
from flask import Flask

from core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Locked,
    NotFound,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
)
from core.events.models import Event
from core.events.types import EventType
from core.scoping import system_session
from web.context import uow

ERRORS: dict[str, tuple[DomainError, int, str]] = {
    "invalid": (ValidationFailed({"email": "Enter your e-mail address."}), 422, "invalid"),
    "unauthenticated": (Unauthenticated("Log in first."), 401, "unauthorized"),
    "not-found": (NotFound("No such practice."), 404, "not_found"),
    "forbidden": (Forbidden("Only the practice's therapist can do that."), 403, "forbidden"),
    "conflict": (Conflict("Changed in another tab."), 409, "conflict"),
    "locked": (Locked("Locked for 15 minutes."), 423, "locked"),
    "rate-limited": (RateLimited("Try again in a minute.", 60), 429, "rate_limited"),
}


@pytest.fixture
def raising_app(app: Flask) -> Flask:
    @app.get("/probe/raise/<kind>")
    @app.get("/api/probe/raise/<kind>")
    def raise_it(kind: str) -> str:
        raise ERRORS[kind][0]

    @app.get("/probe/record/<status>")
    def record_then_answer(status: str) -> tuple[str, int]:
        uow().record(EventType.TEST_EMAIL_REQUESTED, payload={"to": "x@example.com"})
        return "recorded", int(status)

    @app.get("/probe/record-then-raise")
    def record_then_raise() -> str:
        uow().record(EventType.TEST_EMAIL_REQUESTED, payload={"to": "y@example.com"})
        raise Forbidden("no")

    return app


@pytest.mark.parametrize("kind", list(ERRORS))
def test_each_domain_error_is_its_status_as_a_page(raising_app, kind):
    error, status, _code = ERRORS[kind]
    response = raising_app.test_client().get(f"/probe/raise/{kind}")
    assert response.status_code == status
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    expected = " ".join(error.errors.values()) if isinstance(error, ValidationFailed) else str(
        error)
    assert expected in html.unescape(page) and "Traceback" not in page


@pytest.mark.parametrize("kind", list(ERRORS))
def test_each_domain_error_is_its_status_as_json(raising_app, kind):
    error, status, code = ERRORS[kind]
    response = raising_app.test_client().get(f"/api/probe/raise/{kind}")
    assert response.status_code == status
    body = response.get_json()["error"]
    assert body["code"] == code and body["message"]
    if isinstance(error, ValidationFailed):
        assert body["fields"] == {"email": "Enter your e-mail address."}
    if isinstance(error, RateLimited):
        assert response.headers["Retry-After"] == "60"


def _recorded(db) -> set[str]:
    with system_session(db) as session:
        events = session.execute(sa.select(Event)).scalars().all()
    return {event.payload["to"] for event in events}


@pytest.mark.parametrize(("status", "kept"), [(200, True), (302, True), (422, False),
                                              (500, False)])
def test_the_boundary_commits_only_what_answered_without_an_error(raising_app, db, status,
                                                                   kept):
    raising_app.test_client().get(f"/probe/record/{status}")
    assert ("x@example.com" in _recorded(db)) is kept


def test_an_error_raised_after_a_change_rolls_it_back(raising_app, db):
    assert raising_app.test_client().get("/probe/record-then-raise").status_code == 403
    assert _recorded(db) == set()


def test_another_practices_object_is_a_plain_404_and_an_access_denied_entry(app, db, worker):
    from core.audit.models import AuditEntry
    from tests.support.factories import practice
    from tests.support.flows import login

    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    elm = practice(db, "Elm Street", slug_hint="elm")
    client = app.test_client()
    login(client, harbour.therapist_email)
    response = client.get(f"/therapist/clients/{elm.client.id}")
    assert response.status_code == 404
    assert client.get(f"/therapist/clients/{uuid.uuid4()}").status_code == 404
    worker.drain()
    with system_session(db) as session:
        denied = session.execute(sa.select(AuditEntry.subject).where(
            AuditEntry.type == "ACCESS_DENIED")).scalars().all()
    assert denied == [f"accounts:{elm.client.id}"]  # the unknown id is not an attempt
