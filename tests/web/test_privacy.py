"""A person's own data, as they and the platform's operators would notice it: a copy of
everything (across every role account and practice), erasure after a cooling-off period with
pseudonymised audit entries and chains that still verify, and practices' retention holds."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import pytest
import sqlalchemy as sa

from assembly import worker_side_of
from core import clock
from core.audit import writer
from core.audit.models import AuditEntry
from core.events import outbox
from core.identity import invitations, signup
from core.identity.directory import account_for, identity_by_email
from core.identity.models import Role
from core.privacy import people
from core.privacy.models import PrivacyRequest
from core.privacy.registry import REGISTRY
from core.scoping import TenantContext, system_session
from core.tenancy.models import Tenant
from core.uow import UnitOfWork
from tests.support.apps import make_app
from tests.support.factories import finish_onboarding, practice
from tests.support.flows import PASSWORD, login, post_form
from tests.support.platform import Platform
from tests.support.workers import EmbeddedWorker

IP = "203.0.113.57"
FULL_NAME = "Grace Brewster Hopper"
PHONE = "+44 20 7946 1234"
CLIENT_NAME = "Grace at Elm"


@pytest.fixture
def platform(settings, db, smtp_server, request):
    """The platform with a real SMTP server; with Redis as the cache when the test run has one
    (so that the cache a person's data passed through can be searched)."""
    redis_url = request.getfixturevalue("redis_url") if _has_redis() else None
    configured = settings.with_overrides(smtp_url=smtp_server.url, redis_url=redis_url)
    app = make_app(configured, db)
    worker = EmbeddedWorker(app)
    yield Platform(app=app, smtp=smtp_server, worker=worker, db=db)
    worker.stop()


def _has_redis() -> bool:
    from tests.conftest import TEST_REDIS_URL

    return bool(TEST_REDIS_URL)


def _audit_all(db) -> None:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        while writer.write_pending(uow):
            pass


def _relay(platform: Platform) -> None:
    """Publish what the factories recorded without a fast path (as the relay job would), and
    let it all run."""
    platform.settle()  # first what the fast path sent: the relay must not send it again
    side = worker_side_of(platform.app)
    real_now = clock.now
    clock.now = lambda: real_now() + outbox.RELAY_GRACE + timedelta(seconds=1)
    try:
        with side.runtime.unit_of_work() as uow:
            while outbox.relay(uow, side.runtime.publisher):
                pass
    finally:
        clock.now = real_now
    platform.settle()


def _person(platform: Platform):
    """Harbour's therapist, who is also a client of Elm (invited there first): two role
    accounts in two practices, with activity in each."""
    db = platform.db
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    elm = practice(db, "Elm Street", slug_hint="elm")
    email = harbour.therapist_email
    with UnitOfWork(db, tenant=TenantContext.of(elm.tenant.id)) as uow:
        invitations.invite_client(uow, elm.therapist, email)
        uow.commit()
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        identity = identity_by_email(uow.session, email)
        tenant = uow.session.get(Tenant, elm.tenant.id)
        signup.add_client_account(uow, identity.id, tenant, display_name=CLIENT_NAME)
        uow.commit()
        client = account_for(uow.session, identity.id, Role.CLIENT)
    finish_onboarding(db, client)
    browser = platform.client()
    browser.environ_base["REMOTE_ADDR"] = IP
    assert login(browser, email).status_code == 302
    saved = post_form(browser, "/settings/profile", {
        "display_name": "Grace", "full_name": FULL_NAME, "phone": PHONE,
        "time_zone": "Europe/London", "preferred_language": "en"}, page="/settings")
    assert saved.status_code == 302
    # A link sent to them (its token is theirs too).
    assert post_form(platform.client(), "/forgot-password", {"email": email}).status_code in (
        200, 302)
    _relay(platform)
    _audit_all(db)
    return harbour, elm, email, client, browser


def _primary_keys(record: dict, model) -> tuple:
    return tuple(record[c.name] for c in sa.inspect(model).primary_key)


def _zip_of(platform: Platform, browser, email: str) -> tuple[zipfile.ZipFile, str]:
    notes = browser.get("/api/notifications").get_json()["notifications"]
    [ready] = [n for n in notes if n["kind"] == "personal_export_ready"]
    mail = platform.last_mail_to(email)
    assert mail["Subject"] == "Your copy of your data is ready"
    assert ready["link"] in mail.get_body(("plain",)).get_content()
    download = browser.get(ready["link"])
    assert download.status_code == 200, download.get_data(as_text=True)[:500]
    assert download.mimetype == "application/zip"
    return zipfile.ZipFile(io.BytesIO(download.get_data())), ready["link"]


def test_a_person_in_two_practices_gets_everything_about_them_once(platform) -> None:
    harbour, elm, email, _client, browser = _person(platform)
    db = platform.db
    with system_session(db) as session:
        person = people.person_of(session, identity_by_email(session, email).id)
        assert {harbour.tenant.id, elm.tenant.id} == set(person.tenant_ids)
        before = {entry.table: {_primary_keys(people.as_record(row), entry.model)
                                for row in people.rows_of(session, entry, person)}
                  for entry in REGISTRY}
    # What the test is about: their data sits in many tables, in both practices.
    assert {table for table, keys in before.items() if keys} >= {
        "identities", "accounts", "onboarding_progress", "auth_sessions", "tokens",
        "invitations", "notifications", "events", "handler_runs", "audit_entries", "mail_log"}

    refused = post_form(browser, "/settings/privacy/export", {"password": "not my password"},
                        page="/settings")
    assert refused.status_code == 302
    assert "That is not your current password." in browser.get("/settings").get_data(
        as_text=True)
    assert platform.count(PrivacyRequest) == 0

    asked = post_form(browser, "/settings/privacy/export", {"password": PASSWORD},
                      page="/settings")
    assert asked.status_code == 302
    assert "We are preparing a copy of your data" in browser.get("/settings").get_data(
        as_text=True)
    platform.settle()
    archive, link = _zip_of(platform, browser, email)

    names = set(archive.namelist())
    assert {f"{entry.table}.json" for entry in REGISTRY} | {"summary.html",
                                                             "manifest.json"} == names
    for entry in REGISTRY:
        exported = {_primary_keys(r, entry.model)
                    for r in json.loads(archive.read(f"{entry.table}.json"))}
        assert before[entry.table] <= exported, entry.table
    accounts = json.loads(archive.read("accounts.json"))
    assert {(a["role"], a["tenant_id"]) for a in accounts} == {
        ("therapist", str(harbour.tenant.id)), ("client", str(elm.tenant.id))}
    [identity] = json.loads(archive.read("identities.json"))
    assert identity["email"] == email and "password_hash" not in identity
    answers = json.dumps(json.loads(archive.read("onboarding_progress.json")))
    assert FULL_NAME in answers and PHONE in answers
    sessions = json.loads(archive.read("auth_sessions.json"))
    assert IP in {s["ip"] for s in sessions}
    summary = archive.read("summary.html").decode()
    assert email in summary and "onboarding_progress.json" in summary

    # The link works once, for them alone.
    assert browser.get(link).status_code == 404
    other = platform.client()
    assert login(other, elm.therapist_email).status_code == 302
    assert other.get(link).status_code == 404
    platform.settle()
    _audit_all(db)
    with system_session(db) as session:
        kinds = set(session.execute(sa.select(AuditEntry.type).where(AuditEntry.type.in_(
            ["DATA_EXPORT_REQUESTED", "DATA_EXPORTED", "DATA_EXPORT_DOWNLOADED"]))).scalars())
    assert kinds == {"DATA_EXPORT_REQUESTED", "DATA_EXPORTED", "DATA_EXPORT_DOWNLOADED"}
