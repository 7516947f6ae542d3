"""Onboarding through its pages and its API: drafts, no skipping, conflicts, the gate,
completion's effects, reopening, reminders."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from core import clock
from core.audit.models import AuditEntry
from core.notifications.models import Notification
from core.onboarding import reminders, schemas
from core.onboarding.models import OnboardingProgress
from core.tenancy.models import Tenant
from tests.support.flows import (
    PERSONAL_INFO,
    PROFESSIONAL_INFO,
    TERMS,
    complete_onboarding,
    confirm,
    csrf_token,
    link_in,
    login,
    logout,
    onboarding_step,
    post_form,
    signup_therapist,
)

ADA = "ada@harbour.example"


@pytest.fixture
def therapist(platform):
    """A therapist who confirmed her address and stands at the start of onboarding."""
    client = platform.client()
    signup_therapist(client, email=ADA)
    confirm(client, link_in(platform.last_mail_to(ADA), "/verify-email/"))
    return client


def _progress(platform) -> OnboardingProgress:
    [progress] = platform.rows(OnboardingProgress)
    return progress


def _api_put(client, stage, data, version, token=None):
    return client.put("/api/onboarding/progress",
                      json={"stage": stage, "data": data, "version": version},
                      headers={"X-CSRFToken": token or csrf_token(client, "/")})


def test_new_accounts_start_onboarding_and_dashboards_send_them_there(therapist, platform):
    progress = _progress(platform)
    assert (progress.stage, progress.version, progress.completed_at) == ("STARTED", 1, None)
    for path in ("/dashboard", "/therapist"):
        assert therapist.get(path).headers["Location"] == "/onboarding/started"
    body = therapist.get("/api/onboarding/progress").get_json()
    # What sign-up asked already is filled in, not asked again.
    known = {"PERSONAL_INFO": {"full_name": "Dr Ada Lovelace"},
             "PROFESSIONAL_INFO": {"practice_display_name": "Harbour Counselling"}}
    assert body == {"stage": "STARTED", "data": known, "version": 1, "completed": False}


def test_no_skipping_ahead(therapist, platform):
    assert therapist.get("/onboarding/terms").headers["Location"] == "/onboarding/started"
    onboarding_step(therapist, "started", {})
    # Posting "continue" for a later page from the current stage is refused too.
    response = post_form(therapist, "/onboarding/terms",
                         {**TERMS, "action": "continue", "version": _progress(platform).version},
                         page="/onboarding/personal-info")
    assert response.status_code == 302
    assert _progress(platform).stage == "PERSONAL_INFO"
    # A draft for a stage not reached yet is refused by the API.
    refused = _api_put(therapist, "PROFESSIONAL_INFO", {"licence_number": "X"},
                       _progress(platform).version)
    assert refused.status_code == 422


def test_invalid_stage_data_gets_clear_messages_and_keeps_what_was_typed(therapist, platform):
    onboarding_step(therapist, "started", {})
    response = onboarding_step(therapist, "personal-info", {
        "full_name": "", "phone": "call me", "time_zone": "Mars/Olympus",
        "preferred_language": "xx"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    for message in ("Enter your full name.", "Use digits, spaces and an optional leading +",
                    "Choose your time zone from the list.", "Choose a language from the list."):
        assert message in html
    assert 'value="call me"' in html
    assert _progress(platform).stage == "PERSONAL_INFO"
    ok = onboarding_step(therapist, "personal-info", PERSONAL_INFO)
    assert ok.headers["Location"] == "/onboarding/professional-info"


def test_api_saves_drafts_with_optimistic_concurrency(therapist, platform):
    onboarding_step(therapist, "started", {})
    version = _progress(platform).version
    saved = _api_put(therapist, "PERSONAL_INFO", {"full_name": "Ada L", "phone": "+44"},
                     version)
    assert saved.status_code == 200
    assert saved.get_json()["version"] == version + 1
    body = therapist.get("/api/onboarding/progress").get_json()
    assert body["data"]["PERSONAL_INFO"] == {"full_name": "Ada L", "phone": "+44"}

    # A second tab still holding the old version: 409 with the server's copy, nothing lost.
    stale = _api_put(therapist, "PERSONAL_INFO", {"full_name": "Other tab"}, version)
    assert stale.status_code == 409
    error = stale.get_json()["error"]
    assert error["code"] == "conflict"
    assert error["current"]["version"] == version + 1
    assert error["current"]["data"]["PERSONAL_INFO"]["full_name"] == "Ada L"
    assert _progress(platform).data["PERSONAL_INFO"]["full_name"] == "Ada L"


@pytest.mark.parametrize("payload,status", [
    ({"stage": "PERSONAL_INFO", "data": {"full_name": "x" * 5000}, "version": 2}, 422),
    ({"stage": "PERSONAL_INFO", "data": {"is_admin": True}, "version": 2}, 422),
    ({"stage": "PERSONAL_INFO", "data": {"full_name": {"$gt": ""}}, "version": 2}, 422),
    ({"stage": "PERSONAL_INFO", "data": [], "version": 2}, 422),
    ({"stage": "NOWHERE", "data": {}, "version": 2}, 422),
    ({"stage": "PERSONAL_INFO", "data": {}, "version": "2"}, 422),
    ("not an object", 400),
])
def test_api_rejects_what_cannot_be_stored_with_field_errors(therapist, platform, payload,
                                                             status):
    onboarding_step(therapist, "started", {})
    response = therapist.put("/api/onboarding/progress", json=payload,
                             headers={"X-CSRFToken": csrf_token(therapist, "/")})
    assert response.status_code == status
    assert set(response.get_json()["error"]) >= {"code", "message"}


def test_api_needs_the_csrf_header_and_a_fresh_token_can_be_fetched(therapist, platform):
    onboarding_step(therapist, "started", {})
    version = _progress(platform).version
    refused = therapist.put("/api/onboarding/progress",
                            json={"stage": "PERSONAL_INFO", "data": {}, "version": version})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "csrf_failed"
    fresh = therapist.get("/api/csrf-token")
    assert fresh.headers["Cache-Control"] == "no-store"
    token = fresh.get_json()["csrf_token"]
    assert _api_put(therapist, "PERSONAL_INFO", {"full_name": "A"}, version,
                    token=token).status_code == 200


def test_save_and_continue_later_then_resume_elsewhere(therapist, platform):
    onboarding_step(therapist, "started", {})
    later = onboarding_step(therapist, "personal-info",
                            {**PERSONAL_INFO, "phone": "not yet a phone"}, action="later")
    assert later.headers["Location"] == "/dashboard"
    dashboard = therapist.get("/therapist")
    assert dashboard.status_code == 200
    assert "Pick up where you left off" in dashboard.get_data(as_text=True)

    # Another device, a new login: the gate brings her back to the same stage, draft filled in.
    other = platform.client()
    login(other, ADA)
    assert other.get("/dashboard").headers["Location"] == "/onboarding/personal-info"
    page = other.get("/onboarding/personal-info").get_data(as_text=True)
    assert 'value="not yet a phone"' in page and 'value="Ada Lovelace"' in page
    assert re.search(r'<option value="Europe/London" selected>', page)


def test_a_stale_form_post_is_not_silently_applied(therapist, platform):
    onboarding_step(therapist, "started", {})
    stale_version = _progress(platform).version
    _api_put(therapist, "PERSONAL_INFO", {"full_name": "Saved elsewhere"}, stale_version)
    response = post_form(therapist, "/onboarding/personal-info",
                         {**PERSONAL_INFO, "version": stale_version, "action": "continue"},
                         page="/onboarding/personal-info")
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "changed in another window or device" in html
    assert 'value="Ada Lovelace"' in html  # what this tab typed is still in the form
    assert _progress(platform).data["PERSONAL_INFO"]["full_name"] == "Saved elsewhere"


def test_going_back_to_edit_is_allowed(therapist, platform):
    onboarding_step(therapist, "started", {})
    onboarding_step(therapist, "personal-info", PERSONAL_INFO)
    back = onboarding_step(therapist, "professional-info", {"licence_number": "AB-1"},
                           action="back")
    assert back.headers["Location"] == "/onboarding/personal-info"
    progress = _progress(platform)
    assert progress.stage == "PERSONAL_INFO"
    assert progress.data["PROFESSIONAL_INFO"]["licence_number"] == "AB-1"  # kept


def test_completion_welcomes_activates_the_practice_and_notifies(therapist, platform):
    complete_onboarding(therapist, "therapist")
    platform.settle()
    progress = _progress(platform)
    assert progress.completed_at is not None and progress.stage == "COMPLETED"
    assert progress.terms_version == schemas.TERMS_VERSION and progress.terms_ip == "127.0.0.1"
    welcome = platform.last_mail_to(ADA)
    assert welcome["Subject"] == "Welcome to Practice Platform, Dr Ada Lovelace"
    [tenant] = platform.rows(Tenant)
    assert tenant.status == "active" and tenant.activated_at is not None
    assert tenant.settings["time_zone"] == "Europe/London"
    assert tenant.settings["display_name"] == PROFESSIONAL_INFO["practice_display_name"]
    [ready] = platform.rows(Notification)
    assert ready.title == "Your practice is ready"
    types = [e.type for e in platform.rows(AuditEntry)]
    assert types.count("ONBOARDING_STAGE_COMPLETED") == 4  # started, personal, professional, terms
    for expected in ("ONBOARDING_STARTED", "ONBOARDING_COMPLETED", "TENANT_INITIALISED"):
        assert expected in types
    assert therapist.get("/dashboard").headers["Location"] == "/therapist"
    assert "Active" in therapist.get("/therapist").get_data(as_text=True)
    # Finished means finished: the wizard pages lead to the dashboard now.
    assert therapist.get("/onboarding/terms").headers["Location"] == "/dashboard"


def test_clients_skip_professional_info_and_get_their_own_welcome(platform):
    therapist = platform.client()
    signup_therapist(therapist, email=ADA)
    confirm(therapist, link_in(platform.last_mail_to(ADA), "/verify-email/"))
    complete_onboarding(therapist, "therapist")
    platform.settle()
    post_form(therapist, "/therapist/invitations", {"email": "c@example.com"}, page="/therapist")
    link = link_in(platform.last_mail_to("c@example.com"), "/invite/")
    client = platform.client()
    post_form(client, link, {"display_name": "Charles", "password": "a long enough passphrase"},
              page=link)
    onboarding_step(client, "started", {})
    onboarding_step(client, "personal-info", PERSONAL_INFO)
    # Not a stage of a client's set-up: straight back to where they are.
    assert client.get("/onboarding/professional-info").headers["Location"] == "/onboarding/terms"
    assert onboarding_step(client, "terms", TERMS).headers["Location"] == "/dashboard"
    welcome = platform.last_mail_to("c@example.com")
    assert welcome["Subject"] == "Welcome to Harbour Counselling, Charles"


def test_new_terms_send_a_completed_account_back_to_the_terms(therapist, platform, monkeypatch):
    complete_onboarding(therapist, "therapist")
    monkeypatch.setattr(schemas, "TERMS_VERSION", "2027-01-01")
    response = therapist.get("/therapist")
    assert response.headers["Location"] == "/onboarding/terms"
    assert _progress(platform).completed_at is None
    accepted = onboarding_step(therapist, "terms", TERMS)
    assert accepted.headers["Location"] == "/dashboard"
    assert _progress(platform).terms_version == "2027-01-01"


def test_a_new_required_field_reopens_the_stage_that_needs_it(therapist, platform, monkeypatch):
    complete_onboarding(therapist, "therapist")
    extra = schemas.Field("pronouns", "Pronouns", schemas._text("your pronouns"))
    monkeypatch.setitem(schemas.FIELDS, schemas.Stage.PERSONAL_INFO,
                        (*schemas.FIELDS[schemas.Stage.PERSONAL_INFO], extra))
    monkeypatch.setattr(schemas, "TERMS_VERSION", schemas.TERMS_VERSION + "-fields")
    assert therapist.get("/therapist").headers["Location"] == "/onboarding/personal-info"
    platform.settle()
    assert "ONBOARDING_REOPENED" in [e.type for e in platform.rows(AuditEntry)]


def _idle(platform, hours: float) -> None:
    """Pretend the onboarding was last touched `hours` ago."""
    from core.scoping import system_session

    with system_session(platform.db) as session:
        for progress in session.query(OnboardingProgress):
            progress.updated_at = clock.now() - timedelta(hours=hours)
        session.commit()


def _run_reminders(platform, at: datetime) -> int:
    with platform.worker.side.runtime.unit_of_work() as uow:
        return reminders.record_due_reminders(uow, now=at)


def test_abandoned_onboarding_gets_at_most_three_daily_daytime_reminders(therapist, platform):
    onboarding_step(therapist, "started", {})
    onboarding_step(therapist, "personal-info",
                    {**PERSONAL_INFO, "time_zone": "Asia/Tokyo", "phone": ""}, action="later")
    _idle(platform, 25)
    day = (clock.now() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    tokyo_night = day.replace(hour=14)  # 23:00 in Tokyo
    tokyo_morning = day.replace(hour=1)  # 10:00 in Tokyo
    assert _run_reminders(platform, tokyo_night) == 0
    assert _run_reminders(platform, tokyo_morning) == 1
    assert _run_reminders(platform, tokyo_morning + timedelta(hours=2)) == 0  # one a day at most
    reminder = platform.last_mail_to(ADA)
    assert reminder["Subject"] == "Your set-up is waiting where you left it"
    assert "/onboarding" in reminder.get_body(("plain",)).get_content()
    for day in (1, 2, 3):
        _run_reminders(platform, tokyo_morning + timedelta(days=day))
    assert _progress(platform).reminders_sent == 3  # never more than three
    platform.settle()
    assert len([m for m in platform.smtp.to(ADA) if "waiting" in m["Subject"]]) == 3


def test_no_reminder_after_completion(therapist, platform):
    complete_onboarding(therapist, "therapist")
    _idle(platform, 48)
    assert _run_reminders(platform, clock.now().replace(hour=12) + timedelta(days=1)) == 0


def test_admins_do_not_onboard(platform):
    runner = platform.app.test_cli_runner()
    runner.invoke(args=["users", "create-admin", "root@platform.example"],
                  input="a long admin passphrase\na long admin passphrase\n")
    admin = platform.client()
    login(admin, "root@platform.example", "a long admin passphrase")
    assert admin.get("/dashboard").headers["Location"] == "/admin"
    assert platform.rows(OnboardingProgress) == []
    logout(admin)


def _api_complete(client, answers, version, token=None, **headers):
    return client.post("/api/onboarding/complete",
                       json={"version": version, "answers": answers},
                       headers={"X-CSRFToken": token or csrf_token(client, "/"), **headers})


def test_the_whole_set_up_at_once_through_the_seeds_complete_endpoint(therapist, platform):
    version = _progress(platform).version
    answers = {"personal-info": PERSONAL_INFO, "professional-info": PROFESSIONAL_INFO,
               "terms": {"accept_terms": True, "accept_privacy": True}}
    # The same rules as the pages: a stage left invalid stops it, with that stage's errors.
    incomplete = _api_complete(therapist, {**answers, "professional-info": {}}, version)
    assert incomplete.status_code == 422
    error = incomplete.get_json()["error"]
    assert error["stage"] == "professional-info"
    assert {"licence_number", "specialties"} <= set(error["fields"])
    assert _progress(platform).completed_at is None  # nothing half-done was kept
    # Another device saved in between: 409 with the server's copy.
    stale = _api_complete(therapist, answers, version + 7)
    assert stale.status_code == 409
    assert stale.get_json()["error"]["current"]["version"] == version
    # Without the CSRF header it is refused before anything happens.
    assert therapist.post("/api/onboarding/complete",
                          json={"version": version, "answers": answers}).status_code == 400
    done = _api_complete(therapist, answers, version)
    assert done.status_code == 200
    assert done.get_json()["completed"] is True and done.get_json()["stage"] == "COMPLETED"
    platform.settle()
    assert therapist.get("/dashboard").headers["Location"] == "/therapist"
    assert "Active" in therapist.get("/therapist").get_data(as_text=True)
