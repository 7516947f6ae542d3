"""What a hot page does not do: an anonymous page without a form sets no cookie, mints no CSRF
token and so varies on nothing; a logged-in page does not re-sign the cookie it was sent."""

from __future__ import annotations

from tests.support.factories import practice
from tests.support.flows import login, logout


def _sets_cookie(response) -> bool:
    return "Set-Cookie" in response.headers


def test_anonymous_pages_without_a_form_set_no_cookie(client) -> None:
    for path in ("/", "/terms", "/privacy", "/no/such/page"):
        response = client.get(path)
        assert not _sets_cookie(response), path
        assert "Cookie" not in response.headers.get("Vary", ""), path
        assert 'name="csrf-token"' not in response.get_data(as_text=True), path


def test_a_page_with_a_form_sets_the_cookie_its_token_needs(client) -> None:
    response = client.get("/login")
    assert _sets_cookie(response)
    assert 'name="csrf_token"' in response.get_data(as_text=True)
    again = client.get("/login")  # the same token, from the cookie it now sends
    assert not _sets_cookie(again)


def test_a_logged_in_page_neither_resigns_the_cookie_nor_loses_a_notice(client, db) -> None:
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    login(client, harbour.therapist_email)
    client.get("/therapist")
    response = client.get("/therapist")
    assert response.status_code == 200 and not _sets_cookie(response)
    assert 'name="csrf-token"' in response.get_data(as_text=True)  # for its JSON calls
    logout(client)
    assert "You are logged out." in client.get("/login").get_data(as_text=True)
