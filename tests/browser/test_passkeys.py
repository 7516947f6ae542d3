"""Passkeys in Chromium, with the DevTools virtual authenticator: a therapist registers one, logs
in with password and passkey, then with the passkey alone; a tampered client that answers
another person's challenge with her passkey is refused and audited.

WebAuthn needs a domain, not an IP address, for its relying party: this platform is served as
http://localhost:PORT (a secure context), with WEBAUTHN_RP_ID=localhost."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from core import clock
from core.audit.models import AuditEntry
from core.identity.models import FactorKind, Identity, MfaFactor
from core.scoping import system_session
from tests.browser.conftest import LivePlatform, tab_opener
from tests.browser.steps import (
    console_report,
    expect_therapist_dashboard,
    heading,
    log_in,
    log_out,
    sign_up_verified_therapist,
)
from tests.conftest import free_port
from tests.support.apps import make_app
from tests.support.flows import mail_titled
from tests.support.workers import EmbeddedWorker

pytestmark = pytest.mark.browser

ADA = "ada@harbour.example"
GRACE = "grace@elm.example"
HARBOUR = "Harbour Counselling"


@pytest.fixture
def localhost_platform(settings, db, smtp_server) -> Iterator[LivePlatform]:
    from werkzeug.serving import make_server

    port = free_port()
    url = f"http://localhost:{port}"
    app = make_app(settings.with_overrides(smtp_url=smtp_server.url, public_url=url,
                                           webauthn_rp_id="localhost", webauthn_origin=url), db)
    server = make_server("127.0.0.1", port, app, threaded=True)
    worker = EmbeddedWorker(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LivePlatform(app=app, smtp=smtp_server, worker=worker, db=db, url=url)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        worker.stop()


@pytest.fixture
def open_tab(chromium, localhost_platform) -> Iterator:
    open_, tabs = tab_opener(chromium, localhost_platform.url)
    yield open_
    for tab in tabs:
        tab.close()


def _virtual_authenticator(tab) -> None:
    cdp = tab.context.new_cdp_session(tab.page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True}})


# A client that does not play by the rules: it asks for the second-factor options of whoever is
# logged in, then answers them with any passkey the authenticator holds (another person's).
TAMPERED_ANSWER = """async () => {
  const b = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")
    + "===".slice((s.length + 3) % 4)), (c) => c.charCodeAt(0)).buffer;
  const t = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
    .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  const csrf = document.querySelector('[data-passkey] input[name="csrf_token"]').value;
  const headers = {"Content-Type": "application/json", "X-CSRFToken": csrf,
                   Accept: "application/json"};
  const asked = await fetch("/api/passkeys/authentication/options", {method: "POST", headers,
    body: JSON.stringify({purpose: "second_factor"})});
  const {options} = await asked.json();
  const credential = await navigator.credentials.get({publicKey: {
    challenge: b(options.challenge), rpId: options.rpId, allowCredentials: [],
    userVerification: "preferred"}});
  const answer = {id: credential.id, rawId: t(credential.rawId), type: credential.type,
    response: {clientDataJSON: t(credential.response.clientDataJSON),
               authenticatorData: t(credential.response.authenticatorData),
               signature: t(credential.response.signature),
               userHandle: credential.response.userHandle ? t(credential.response.userHandle)
                                                          : null},
    clientExtensionResults: {}};
  const sent = await fetch("/api/passkeys/authentication", {method: "POST", headers,
    body: JSON.stringify({purpose: "second_factor", credential: answer})});
  return {status: sent.status, body: await sent.json()};
}"""



def test_passkey_as_second_factor_and_alone(localhost_platform, open_tab, moved_clock) -> None:
    platform = localhost_platform
    ada = open_tab()
    sign_up_verified_therapist(ada, platform, practice=HARBOUR, name="Dr Ada Lovelace",
                               email=ADA)
    _virtual_authenticator(ada)
    page = ada.page

    # Register a passkey, named, that may also log in alone.
    ada.goto("/account/second-factor")
    page.get_by_label("Name of the new passkey").fill("Work laptop")
    page.get_by_label("Also log in with this passkey alone").check()
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("button", name="Remove Work laptop")).to_be_visible()
    mail_titled(platform, ADA, "A second factor was added to your login")

    # Password, then the passkey.
    log_out(ada)
    log_in(ada, ADA)
    expect(heading(page)).to_have_text("Enter your second factor")
    page.get_by_role("button", name="Use a passkey instead").click()
    expect_therapist_dashboard(ada, HARBOUR)

    # The passkey alone.
    log_out(ada)
    ada.goto("/login")
    page.get_by_role("button", name="Use a passkey instead of a password").click()
    expect_therapist_dashboard(ada, HARBOUR)

    # Step-up with the passkey, eleven minutes on.
    moved_clock(timedelta(minutes=11))
    ada.goto("/account/password")
    expect(heading(page)).to_have_text("Confirm it is you")
    page.get_by_role("button", name="Confirm with a passkey").click()
    expect(heading(page)).to_have_text("Change your password")

    # Grace has a second factor of her own. A tampered client in Ada's browser answers
    # Grace's challenge with Ada's passkey: refused, counted and audited.
    log_out(ada)
    signup_grace = open_tab()
    sign_up_verified_therapist(signup_grace, platform, practice="Elm Street",
                               name="Dr Grace Hopper", email=GRACE)
    with system_session(platform.db) as session:
        grace = session.query(Identity).filter_by(email=GRACE).one()
        session.add(MfaFactor(id=uuid.uuid4(), identity_id=grace.id, kind=FactorKind.PASSKEY,
                              name="Grace's key", credential_id="Z3JhY2Uta2V5",
                              public_key=b"not used", sign_count=0, created_at=clock.now(),
                              confirmed_at=clock.now()))
        session.commit()
    log_in(ada, GRACE)
    expect(heading(page)).to_have_text("Enter your second factor")
    answered = page.evaluate(TAMPERED_ANSWER)
    assert answered["status"] == 401, answered
    assert answered["body"]["error"]["code"] == "unauthorized"
    ada.goto("/therapist")
    expect(heading(page)).to_have_text("Enter your second factor")
    platform.settle()
    with system_session(platform.db) as session:
        failed = [e.details for e in session.query(AuditEntry).filter_by(type="MFA_FAILED")]
    assert [(f["reason"], f["during"]) for f in failed] == [("foreign_credential", "login")]

    # The tampered client's request failed on purpose (401); nothing else went wrong.
    assert [e for e in ada.errors if "status of 401" not in e] == [], \
        console_report({"ada": ada})
