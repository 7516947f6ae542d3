"""No input, however odd, makes any form answer with a 500 (hypothesis)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.factories import practice
from tests.support.flows import csrf_token, login

# Text people (and attackers) type: any unicode incl. control characters and NUL, empty,
# very long, e-mail-ish and SQL-ish strings.
TEXT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=3000),
    st.from_regex(r"[a-zA-Z0-9._%+-]{1,30}@[a-z0-9-]{1,20}\.[a-z]{2,6}", fullmatch=True),
    st.sampled_from(["", " ", "\x00", "' OR 1=1 --", "<script>alert(1)</script>",
                     "a" * 10_000, "ü" * 129, "ada@harbour.example", "\r\nSet-Cookie: x=1"]),
)

ANONYMOUS_FORMS = {
    "/signup": ["practice_name", "display_name", "email", "password"],
    "/join/harbour-counselling": ["display_name", "email", "password"],
    "/login": ["email", "password", "next"],
    "/forgot-password": ["email"],
}
LOGGED_IN_FORMS = {
    "/account/password": ["current_password", "new_password"],
    "/therapist/invitations": ["email"],
    "/switch-role": ["role"],
    "/signup": ["practice_name", "display_name"],
    "/join/elm-street": ["display_name"],
    "/account/sessions/revoke-others": [],
    "/account/resend-verification": [],
    "/logout": [],
}
TOKEN_FORMS = ["/verify-email/{}", "/reset-password/{}", "/set-password/{}", "/invite/{}"]

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture
def practices(app, db):
    return practice(db, "Harbour Counselling", slug_hint="harbour"), practice(
        db, "Elm Street", slug_hint="elm")


@pytest.mark.parametrize("path", list(ANONYMOUS_FORMS))
def test_anonymous_forms_never_500(client, practices, path):
    fields = ANONYMOUS_FORMS[path]
    token = csrf_token(client, "/login")

    @FUZZ
    @given(st.fixed_dictionaries({f: TEXT for f in fields}))
    def post(values):
        response = client.post(path, data={"csrf_token": token, **values})
        assert response.status_code < 500, (path, values, response.status_code)

    post()


@pytest.mark.parametrize("path", list(LOGGED_IN_FORMS))
def test_logged_in_forms_never_500(client, practices, path):
    harbour, _ = practices
    assert login(client, harbour.therapist_email).status_code == 302
    fields = LOGGED_IN_FORMS[path]

    @FUZZ
    @given(st.fixed_dictionaries({f: TEXT for f in fields}))
    def post(values):
        if client.get("/dashboard").status_code != 302 or path == "/logout":
            login(client, harbour.therapist_email)  # a fuzzed password change or logout
        token = csrf_token(client, "/")
        response = client.post(path, data={"csrf_token": token, **values})
        assert response.status_code < 500, (path, values, response.status_code)

    post()


@pytest.mark.parametrize("pattern", TOKEN_FORMS)
def test_link_pages_never_500_whatever_the_token(client, practices, pattern):
    token = csrf_token(client, "/login")

    @FUZZ
    @given(st.text(min_size=1, max_size=400), st.fixed_dictionaries(
        {"password": TEXT, "display_name": TEXT}))
    def open_and_post(raw, values):
        path = pattern.format(quote(raw, safe=""))
        assert client.get(path).status_code < 500
        response = client.post(path, data={"csrf_token": token, **values})
        assert response.status_code < 500, (path, response.status_code)

    open_and_post()


def test_forms_refuse_missing_or_forged_csrf(client, practices):
    for path in [*ANONYMOUS_FORMS, "/logout", "/switch-role"]:
        assert client.post(path, data={"email": "a@b.example"}).status_code == 400
        assert client.post(path, data={"csrf_token": "forged"}).status_code == 400
