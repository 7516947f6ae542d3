"""A second factor, through the pages: enrolment, the log-in challenge, replay and guessing
refused and audited, recovery codes, step-up, a practice's policy, an admin's reset."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pyotp

from core import clock
from core.audit.models import AuditEntry
from core.events.models import Event
from core.identity.models import AuthSession, Identity, MfaFactor, RecoveryCode
from tests.support.flows import (
    PASSWORD,
    complete_onboarding,
    confirm,
    csrf_token,
    link_in,
    login,
    logout,
    mail_titled,
    post_form,
    signup_therapist,
)

THERAPIST = "ada@harbour.example"
SECRET = re.compile(r'id="totp-secret"[^>]*>([A-Z2-7]+)<')
RECOVERY = re.compile(r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>")



def _code(secret: str) -> str:
    return pyotp.TOTP(secret).at(clock.now())


def _verified_therapist(platform, client, email=THERAPIST, practice="Harbour Counselling"):
    assert signup_therapist(client, email=email, practice=practice).status_code == 200
    link = link_in(platform.last_mail_to(email), "/verify-email/")
    assert confirm(client, link).status_code == 302
    complete_onboarding(client, "therapist")
    platform.settle()


def _enrol_app(client) -> tuple[str, list[str]]:
    """Set up an authenticator app; returns its secret (read off the page) and the codes."""
    started = post_form(client, "/account/second-factor/app", {}, page="/account/second-factor")
    assert started.status_code == 302 and started.location.endswith("/second-factor/app/confirm")
    page = client.get("/account/second-factor/app/confirm").get_data(as_text=True)
    # The QR code is inline SVG drawn with attributes: no inline script or style (CSP intact).
    svg = re.search(r'<svg role="img".*?</svg>', page, re.S).group(0)
    assert "<style" not in svg and "style=" not in svg and "<script" not in svg
    secret = SECRET.search(page).group(1)
    done = post_form(client, "/account/second-factor/app/confirm", {"code": _code(secret)},
                     page="/account/second-factor/app/confirm")
    assert done.status_code == 200
    codes = RECOVERY.findall(done.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def _answer(client, code: str):
    return post_form(client, "/login/second-factor", {"code": code},
                     page="/login/second-factor")


def _types(platform) -> list[str]:
    platform.settle()
    return [e.type for e in platform.rows(AuditEntry)]


def _failures(platform) -> list[dict]:
    platform.settle()
    entries = sorted(platform.rows(AuditEntry), key=lambda e: e.occurred_at)
    return [e.details for e in entries if e.type == "MFA_FAILED"]


def test_enrolled_therapist_logs_in_with_password_and_code(platform, moved_clock):
    client = platform.client()
    _verified_therapist(platform, client)
    secret, _codes = _enrol_app(client)
    [factor] = platform.rows(MfaFactor)
    # The secret is encrypted at rest: it appears nowhere in the row as it is stored.
    assert factor.confirmed_at is not None and secret not in (factor.secret_encrypted or "")
    assert all(len(c.code_hash) == 64 for c in platform.rows(RecoveryCode))
    mail_titled(platform, THERAPIST, "A second factor was added to your login")

    logout(client)
    moved_clock(timedelta(seconds=60))
    assert login(client, THERAPIST).location.endswith("/login/second-factor")
    # Nothing but the challenge (and logging out) until the code is given.
    gated = client.get("/therapist")
    assert gated.status_code == 302 and "/login/second-factor" in gated.location
    api = client.get("/api/onboarding/progress")
    assert api.status_code == 403
    assert api.get_json()["error"]["code"] == "second_factor_required"

    wrong = _answer(client, "000000" if _code(secret) != "000000" else "111111")
    assert wrong.status_code == 401
    assert "That code is not right" in wrong.get_data(as_text=True)
    passed = _answer(client, _code(secret))
    assert passed.status_code == 302 and passed.location.endswith("/dashboard")
    assert client.get("/therapist").status_code == 200
    [session] = [s for s in platform.rows(AuthSession) if s.revoked_at is None]
    assert session.factors == "password totp" and session.second_factor_at is not None
    assert session.gate is None
    assert [f["reason"] for f in _failures(platform)] == ["wrong_code"]
    assert "MFA_ENROLLED" in _types(platform)
    # The person's own security history shows both, and the session how it was made.
    history = client.get("/account/second-factor").get_data(as_text=True)
    assert "Second factor added" in history and "Wrong second-factor code" in history
    assert "password + authenticator app" in client.get("/account/sessions").get_data(as_text=True)


def test_a_used_code_is_refused_within_its_window_and_audited(platform, moved_clock):
    client = platform.client()
    _verified_therapist(platform, client)
    secret, _ = _enrol_app(client)
    logout(client)
    moved_clock(timedelta(seconds=60))
    code = _code(secret)
    login(client, THERAPIST)
    assert _answer(client, code).status_code == 302
    logout(client)

    login(client, THERAPIST)  # the same code, at once: a replay
    replayed = _answer(client, code)
    assert replayed.status_code == 401
    assert client.get("/therapist").status_code == 302
    assert [(f["reason"], f["during"]) for f in _failures(platform)] == [("replay", "login")]


def test_wrong_codes_lock_the_login_like_wrong_passwords(platform, settings, moved_clock):
    client = platform.client()
    _verified_therapist(platform, client)
    secret, _ = _enrol_app(client)
    logout(client)
    moved_clock(timedelta(seconds=60))
    login(client, THERAPIST)
    right = _code(secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(settings.login_max_failures - 1):
        assert _answer(client, wrong).status_code == 401
    # The password again does not give a new budget of guesses: the count goes on.
    assert post_form(client, "/logout", {}, page="/login/second-factor").status_code == 302
    assert login(client, THERAPIST).location.endswith("/login/second-factor")
    assert _answer(client, wrong).status_code == 401
    # Locked now: even the right code is refused, and so is the password.
    assert _answer(client, right).status_code == 401
    identity = platform.rows(Identity)[0]
    assert identity.locked_until is not None
    reasons = [f["reason"] for f in _failures(platform)]
    assert reasons == ["wrong_code"] * settings.login_max_failures + ["locked"]
    assert "ACCOUNT_LOCKED" in _types(platform)
    assert mail_titled(platform, THERAPIST, "Your login is locked for 15 minutes")


def test_a_recovery_code_works_once_and_its_owner_is_told(platform, moved_clock):
    client = platform.client()
    _verified_therapist(platform, client)
    _secret, codes = _enrol_app(client)
    logout(client)

    login(client, THERAPIST)
    assert _answer(client, codes[0].upper().replace("-", " ")).status_code == 302
    notice = mail_titled(platform, THERAPIST, "A recovery code was used to log in")
    assert "9 of your codes are left" in notice.get_body(("plain",)).get_content()
    logout(client)

    login(client, THERAPIST)
    assert _answer(client, codes[0]).status_code == 401
    assert _answer(client, codes[1]).status_code == 302
    assert [f["reason"] for f in _failures(platform)] == ["wrong_code"]
    assert _types(platform).count("RECOVERY_CODE_USED") == 2


def test_sensitive_changes_need_a_fresh_second_factor(platform, moved_clock):
    client = platform.client()
    _verified_therapist(platform, client)
    secret, _ = _enrol_app(client)  # proven just now: no step-up yet
    assert client.get("/account/password").status_code == 200

    moved_clock(timedelta(minutes=11))
    asked = client.get("/account/password")
    assert asked.status_code == 302
    assert asked.location.endswith("/account/step-up?next=/account/password")
    # A bypass attempt: posting the change directly is refused, changes nothing, is audited.
    bypass = post_form(client, "/account/password", {"current_password": PASSWORD,
                                                     "new_password": "another long password"},
                       page="/settings", headers={"Referer": "http://localhost/settings"})
    assert bypass.status_code == 302 and "/account/step-up?next=/settings" in bypass.location
    email = post_form(client, "/settings/email", {"new_email": "ada@elsewhere.example",
                                                  "password": PASSWORD}, page="/settings")
    assert email.status_code == 302 and "/account/step-up" in email.location
    assert login(platform.client(), THERAPIST).status_code == 302  # the password is unchanged
    platform.settle()
    denied = [e.details for e in platform.rows(AuditEntry) if e.type == "ACCESS_DENIED"]
    assert [d.get("reason") for d in denied].count("step_up") == 3
    assert not [e for e in platform.rows(Event) if e.type == "PASSWORD_CHANGED"]

    wrong = post_form(client, "/account/step-up?next=/account/password", {"code": "12345"},
                      page="/account/step-up?next=/account/password")
    assert wrong.status_code == 401
    proved = post_form(client, "/account/step-up", {"code": _code(secret),
                                                     "next": "/account/password"},
                       page="/account/step-up?next=/account/password")
    assert proved.status_code == 302 and proved.location.endswith("/account/password")
    assert client.get("/account/password").status_code == 200
    assert [f["during"] for f in _failures(platform)] == ["step_up"]


def test_removing_the_app_needs_step_up_and_tells_the_owner(platform, moved_clock):
    client = platform.client()
    _verified_therapist(platform, client)
    _enrol_app(client)
    [factor] = platform.rows(MfaFactor)
    removed = post_form(client, f"/account/second-factor/{factor.id}/remove", {},
                        page="/account/second-factor")
    assert removed.status_code == 302
    assert platform.rows(MfaFactor) == [] and platform.rows(RecoveryCode) == []
    mail_titled(platform, THERAPIST, "A second factor was removed from your login")
    logout(client)
    assert login(client, THERAPIST).location.endswith("/dashboard")  # no challenge any more


def test_another_persons_factor_is_not_found(platform):
    ada = platform.client()
    _verified_therapist(platform, ada)
    _enrol_app(ada)
    [factor] = platform.rows(MfaFactor)
    grace = platform.client()
    _verified_therapist(platform, grace, email="grace@elm.example", practice="Elm Street")
    response = post_form(grace, f"/account/second-factor/{factor.id}/remove", {},
                         page="/account/second-factor")
    assert response.status_code == 404
    assert len(platform.rows(MfaFactor)) == 1


def test_practice_policy_leads_therapists_to_enrol_first(platform, moved_clock):
    client = platform.client()
    _verified_therapist(platform, client)
    saved = post_form(client, "/settings/practice/second-factor", {"policy": "therapists"})
    assert saved.status_code == 302
    bad = post_form(client, "/settings/practice/second-factor", {"policy": "martians"})
    assert bad.status_code == 422
    logout(client)

    assert login(client, THERAPIST).status_code == 302
    gated = client.get("/therapist")
    assert gated.status_code == 302 and gated.location.endswith("/account/second-factor")
    assert client.get("/settings").status_code == 302
    assert client.get("/account/second-factor").status_code == 200
    _enrol_app(client)
    assert client.get("/therapist").status_code == 200

    logout(client)
    moved_clock(timedelta(seconds=60))
    login(client, THERAPIST)
    assert client.get("/therapist").location.endswith("/login/second-factor?next=/therapist")


def test_an_admin_resets_a_persons_factors(platform):
    client = platform.client()
    _verified_therapist(platform, client)
    _enrol_app(client)
    runner = platform.app.test_cli_runner()
    result = runner.invoke(args=["users", "create-admin", "root@platform.example"],
                           input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    admin = platform.client()
    assert login(admin, "root@platform.example").status_code == 302
    unknown = post_form(admin, "/admin/second-factor", {"email": "nobody@example.com"})
    assert unknown.status_code == 422
    reset = post_form(admin, "/admin/second-factor", {"email": THERAPIST})
    assert reset.status_code == 302
    assert platform.rows(MfaFactor) == [] and platform.rows(RecoveryCode) == []
    assert client.get("/therapist").status_code == 302  # their session was logged out
    notice = mail_titled(platform, THERAPIST, "A second factor was removed from your login")
    assert "A platform admin removed every second factor" in \
        notice.get_body(("plain",)).get_content()
    removed = [e for e in platform.rows(AuditEntry) if e.type == "MFA_REMOVED"]
    assert removed and removed[-1].details["by"] == "admin"


def test_passkey_endpoints_refuse_bad_input_with_an_error_envelope(platform):
    client = platform.client()
    _verified_therapist(platform, client)
    headers = {"X-CSRFToken": csrf_token(client, "/account/second-factor"),
               "Accept": "application/json"}

    def post(path, body):
        response = client.post(path, json=body, headers=headers)
        assert response.status_code < 500, (path, body, response.status_code)
        return response

    def refused(response, status, code):
        assert response.status_code == status, response.get_data(as_text=True)
        error = response.get_json()["error"]
        assert error["code"] == code and error["message"]

    assert "challenge" in post("/api/passkeys/registration/options", {}).get_json()["options"]
    refused(post("/api/passkeys/registration", {"credential": {"id": 1}, "name": "Laptop"}),
            422, "invalid")
    # The challenge was used up by that answer.
    refused(post("/api/passkeys/registration", {"credential": {}, "name": "Laptop"}),
            400, "no_challenge")
    post("/api/passkeys/registration/options", {})
    refused(post("/api/passkeys/registration", {"credential": "junk", "name": ["x"]}),
            422, "invalid")
    refused(post("/api/passkeys/authentication/options", {"purpose": "bogus"}),
            400, "bad_request")
    refused(post("/api/passkeys/authentication/options", {"purpose": "second_factor"}),
            400, "wrong_purpose")  # this session owes no second factor
    assert post("/api/passkeys/authentication/options", {"purpose": "login"}).status_code == 200
    refused(post("/api/passkeys/authentication", {"purpose": "login",
                                                  "credential": {"rawId": 5}}),
            401, "unauthorized")
    refused(client.post("/api/passkeys/authentication", data="not json", headers=headers),
            400, "bad_request")
    assert platform.rows(MfaFactor) == []


def test_a_reset_link_does_not_stand_in_for_the_second_factor(platform, moved_clock):
    client = platform.client()
    _verified_therapist(platform, client)
    secret, _ = _enrol_app(client)
    post_form(platform.client(), "/forgot-password", {"email": THERAPIST})
    link = link_in(mail_titled(platform, THERAPIST, "Reset your password"), "/reset-password/")
    resetter = platform.client()
    done = post_form(resetter, link, {"password": "a brand new long passphrase"}, page=link)
    assert done.status_code == 302
    gated = resetter.get("/therapist")
    assert gated.status_code == 302 and "/login/second-factor" in gated.location
    moved_clock(timedelta(seconds=60))
    assert _answer(resetter, _code(secret)).status_code == 302
    assert resetter.get("/therapist").status_code == 200
    [session] = [s for s in platform.rows(AuthSession) if s.revoked_at is None]
    assert session.factors == "link totp"


def test_a_copy_or_an_erasure_of_ones_data_needs_a_fresh_second_factor(platform, moved_clock):
    from core.privacy.models import PrivacyRequest

    client = platform.client()
    _verified_therapist(platform, client)
    secret, _ = _enrol_app(client)
    moved_clock(timedelta(minutes=11))
    for path in ("/settings/privacy/export", "/settings/privacy/erasure"):
        refused = post_form(client, path, {"password": PASSWORD}, page="/settings",
                            headers={"Referer": "http://localhost/settings"})
        assert refused.status_code == 302 and "/account/step-up?next=/settings" in refused.location
    assert platform.rows(PrivacyRequest) == []
    platform.settle()
    denied = [e.details for e in platform.rows(AuditEntry) if e.type == "ACCESS_DENIED"]
    assert [d.get("reason") for d in denied].count("step_up") == 2

    proved = post_form(client, "/account/step-up", {"code": _code(secret), "next": "/settings"},
                       page="/account/step-up?next=/settings")
    assert proved.status_code == 302 and proved.location.endswith("/settings")
    asked = post_form(client, "/settings/privacy/export", {"password": PASSWORD}, page="/settings")
    assert asked.status_code == 302
    assert [r.kind for r in platform.rows(PrivacyRequest)] == ["export"]


def test_a_copy_of_ones_data_lists_ones_factors_but_never_their_secrets(platform):
    from core.identity.directory import identity_by_email
    from core.privacy import people
    from core.scoping import system_session

    client = platform.client()
    _verified_therapist(platform, client)
    secret, codes = _enrol_app(client)
    with system_session(platform.db) as session:
        person = people.person_of(session, identity_by_email(session, THERAPIST).id)
        copy = people.everything(session, person)
    [app] = copy["mfa_factors"]
    assert app["kind"] == "totp" and app["name"] == "Authenticator app"
    assert len(copy["mfa_recovery_codes"]) == 10
    written = json.dumps(copy)
    assert "secret_encrypted" not in written and "code_hash" not in written
    assert secret not in written and not any(code in written for code in codes)
