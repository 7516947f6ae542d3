"""A warm dashboard request asks the database nothing about who you are, and at most one
statement in all: who is asking, the onboarding gate and the page's content come from the
cache."""

from __future__ import annotations

import re

import sqlalchemy as sa

from tests.support.factories import practice
from tests.support.flows import login

# Who is asking: the identity, its session, its account, its onboarding state. (Listing the
# practice's clients reads `accounts` too, but that is the page's content.)
WHO_IS_ASKING = re.compile(
    r"\bFROM (identities|auth_sessions|onboarding_progress)\b"
    r"|\bFROM accounts\b.*\baccounts\.(id|identity_id) =", re.S)


def _statements(engine, run) -> list[str]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return seen


def test_warm_dashboard_makes_no_identity_queries(app, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    client = app.test_client()
    assert login(client, harbour.therapist_email).status_code == 302
    assert client.get("/therapist").status_code == 200  # warms the session and gate caches
    statements = _statements(db.engine, lambda: client.get("/therapist"))
    identity = [s for s in statements if WHO_IS_ASKING.search(s)]
    assert identity == [], identity
    # At most the pool's liveness ping of a connection that sat idle, or the minutely note that
    # the session is in use (the row-level security settings go to the driver directly and are
    # not seen here).
    assert len(statements) <= 1, statements


def test_the_dashboards_content_follows_what_changes_it(app, db):
    from tests.support.flows import post_form

    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    client = app.test_client()
    login(client, harbour.therapist_email)
    assert "later@harbour.example" not in client.get("/therapist").get_data(as_text=True)
    post_form(client, "/therapist/invitations", {"email": "later@harbour.example"},
              page="/therapist")
    assert "later@harbour.example" in client.get("/therapist").get_data(as_text=True)
