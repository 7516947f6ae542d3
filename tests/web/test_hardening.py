"""Defects an outside test found (issue 14, part A): each test failed before its fix."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core import clock
from core.identity.models import Identity
from core.onboarding import service as onboarding
from core.scoping import system_session
from tests.support.factories import practice
from tests.support.flows import (
    PASSWORD,
    csrf_token,
    login,
    onboarding_step,
    post_form,
    signup_therapist,
)


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


# -- inputs that gave 500 ------------------------------------------------------------------------

def _json(client, method, path, raw_body, *, token):
    return client.open(path, method=method, data=raw_body,
                       headers={"Content-Type": "application/json", "X-CSRFToken": token})


def _assert_clear_error(response, statuses=(400, 422)):
    assert response.status_code in statuses, (response.status_code, response.get_data()[:300])
    error = response.get_json()["error"]
    assert error["code"] and error["message"]
    return error


@pytest.mark.parametrize("raw_body", [
    '{"stage": "personal-info", "data": {"full_name": "\\ud800"}, "version": 1}',
    '{"stage": "personal-info", "data": {"\\udfff": "x"}, "version": 1}',
    "[" * 50_000 + "]" * 50_000,
    '{"stage": "personal-info", "data": ' + '{"a": ' * 200 + "1" + "}" * 200 + ', "version": 1}',
    '{"stage": "personal-info", "data": {"full_name": NaN}, "version": 1}',
    '{"stage": "personal-info", "data": {"full_name": 1e999}, "version": 1}',
    "\xff\xfe not utf-8",
])
def test_a_hostile_onboarding_draft_is_a_clear_400(client, harbour, raw_body):
    login(client, harbour.client_email)
    token = csrf_token(client, "/client")
    response = _json(client, "PUT", "/api/onboarding/progress", raw_body.encode("utf-8", "replace")
                     if raw_body.isascii() else raw_body.encode("latin-1"), token=token)
    error = _assert_clear_error(response, (400,))
    assert error["code"] == "bad_request"


@pytest.mark.parametrize("raw_body", ["[]", '"ids"', '{"ids": 5}', '{"ids": null}',
                                      '{"ids": true}', '{"ids": [5]}', '{"ids": ["nope"]}',
                                      '{"ids": {"a": 1}}', "not json"])
def test_marking_notifications_read_with_a_wrong_body_is_a_clear_error(client, harbour, raw_body):
    login(client, harbour.client_email)
    token = csrf_token(client, "/client")
    _assert_clear_error(_json(client, "POST", "/api/notifications/read", raw_body, token=token))


@pytest.mark.parametrize("after", ["2026-11-29T10:00:00", "2026-11-29", "%00",
                                   "0001-01-01T00:00:00%2B14:00", "9999-12-31T23:59:59-14:00",
                                   "yesterday"])
def test_a_notifications_cursor_that_is_not_an_aware_time_is_a_400(client, harbour, after):
    login(client, harbour.client_email)
    _assert_clear_error(client.get(f"/api/notifications?after={after}"), (400,))


@pytest.mark.parametrize("last_event_id", ["2026-11-29T10:00:00", "2026-11-29",
                                           "0001-01-01T00:00:00+14:00", "x\x00"])
def test_a_stream_resumed_from_a_bad_event_id_is_a_400(client, harbour, last_event_id):
    login(client, harbour.client_email)
    response = client.get("/api/notifications/stream", headers={"Last-Event-ID": last_event_id})
    _assert_clear_error(response, (400,))


def test_an_aware_cursor_still_works(client, harbour):
    login(client, harbour.client_email)
    response = client.get("/api/notifications?after=2026-11-29T10:00:00%2B01:00")
    assert response.status_code == 200 and response.get_json() == {"notifications": []}


def test_a_join_link_with_nul_is_a_404_page(client, harbour):
    response = client.get("/join/%00")
    assert response.status_code == 404 and b"<html" in response.data


def test_revoking_a_session_named_with_nul_is_a_404(client, harbour):
    login(client, harbour.therapist_email)
    response = post_form(client, "/account/sessions/%00/revoke", {}, page="/account/sessions")
    assert response.status_code == 404


def test_a_query_with_nul_is_a_400(client, harbour):
    response = client.get("/login?next=%00")
    assert response.status_code == 400 and b"NUL" in response.data


@pytest.mark.parametrize("sid", [5, None, ["x"], {"a": 1}, True])
def test_a_signed_cookie_whose_session_id_is_not_text_is_just_anonymous(app, client, sid):
    signed = app.session_interface.get_signing_serializer(app).dumps({"sid": sid})
    client.set_cookie("session", signed)
    assert client.get("/").status_code == 200
    assert client.get("/account/sessions").status_code == 302  # to the login page


# -- onboarding: the version check and completed set-ups ------------------------------------------

def _progress(db, account_id):
    with system_session(db) as session:
        return onboarding.of_account(session, account_id)


@pytest.mark.parametrize("version", [None, "", "three", "1.5"])
def test_an_onboarding_form_without_a_usable_version_saves_nothing(client, db, version):
    signup_therapist(client, email="new@harbour.example")
    with system_session(db) as session:
        identity = session.execute(sa.select(Identity)).scalar_one()
        identity.email_verified_at = clock.now()
        session.commit()
        account_id = identity.id
    login(client, "new@harbour.example")
    assert onboarding_step(client, "started", {}).status_code == 302
    before = _progress(db, account_id)
    data = {"action": "later", "full_name": "Typed", **({} if version is None
                                                       else {"version": version})}
    response = post_form(client, "/onboarding/personal-info", data,
                         page="/onboarding/personal-info")
    assert response.status_code == 422
    assert "without the version" in response.get_data(as_text=True)
    assert 'value="Typed"' in response.get_data(as_text=True)  # what they typed is on the page
    after = _progress(db, account_id)
    assert (after.version, after.data) == (before.version, before.data)


def test_the_api_refuses_an_invalid_draft_into_a_completed_set_up(client, db, harbour):
    login(client, harbour.client_email)
    token = csrf_token(client, "/client")
    before = _progress(db, harbour.client.id)
    assert before.completed_at is not None
    response = _json(client, "PUT", "/api/onboarding/progress",
                     '{"stage": "personal-info", "data": {"full_name": "", "phone": "x"}, '
                     f'"version": {before.version}}}', token=token)
    error = _assert_clear_error(response, (422,))
    assert set(error["fields"]) == {"full_name", "phone"}
    after = _progress(db, harbour.client.id)
    assert after.data == before.data and after.completed_at is not None
    # A valid edit of a completed set-up is still saved.
    response = _json(client, "PUT", "/api/onboarding/progress",
                     '{"stage": "personal-info", "data": {"full_name": "Client Renamed"}, '
                     f'"version": {before.version}}}', token=token)
    assert response.status_code == 200
    assert _progress(db, harbour.client.id).data["PERSONAL_INFO"]["full_name"] == "Client Renamed"
