"""Defects an outside test found (issue 14, part A): each test failed before its fix."""

from __future__ import annotations

import pytest

from tests.support.factories import practice
from tests.support.flows import PASSWORD, csrf_token, login, post_form


@pytest.fixture
def harbour(app, db):
    return practice(db, "Harbour Counselling", slug_hint="harbour")


# -- open redirects after login ------------------------------------------------------------------

@pytest.mark.parametrize("payload", ["/%09/evil.example", "/%0A/x", "/%0D%0A/evil.example",
                                     "%09//evil.example", "/%5C/evil.example"])
def test_a_logged_in_person_is_never_sent_off_site(client, harbour, payload):
    login(client, harbour.therapist_email)
    response = client.get(f"/login?next={payload}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"


@pytest.mark.parametrize("payload", ["/\t/evil.example", "/\n/x", "\\/evil.example"])
def test_the_hidden_next_field_cannot_send_anyone_off_site(client, harbour, payload):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"csrf_token": token, "email": harbour.therapist_email,
                                           "password": PASSWORD, "next": payload})
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"


def test_a_same_site_next_path_is_still_followed(client, harbour):
    response = post_form(client, "/login", {"email": harbour.therapist_email,
                                            "password": PASSWORD, "next": "/account/sessions"})
    assert response.headers["Location"] == "/account/sessions"
