"""A person's own data, as they and the platform's operators would notice it: a copy of
everything (across every role account and practice), erasure after a cooling-off period with
pseudonymised audit entries and chains that still verify, and practices' retention holds."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from assembly import worker_side_of
from core import clock
from core.audit import exports as audit_exports
from core.audit import writer
from core.audit.models import AuditEntry
from core.audit.viewer import Filters
from core.events import outbox
from core.identity import invitations, signup
from core.identity.directory import account_for, identity_by_email
from core.identity.models import Account, Identity, Role
from core.mail.allowance import recipient_hash
from core.mail.models import MailLog
from core.privacy import export as privacy_exports
from core.privacy import people
from core.privacy.models import LegalHold, PrivacyRequest, RestrictedRecord
from core.privacy.registry import REGISTRY
from core.scoping import TenantContext, system_session
from core.tenancy.models import Tenant
from core.uow import UnitOfWork
from tests.conftest import TEST_DATABASE_URL
from tests.support.apps import make_app
from tests.support.factories import finish_onboarding, practice
from tests.support.flows import PASSWORD, link_in, login, post_form
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


def _no_download_after_72_hours(platform: Platform, link: str) -> None:
    """The link's own expiry, checked as the download view does (a browser left idle for 72
    hours would be logged out before it got that far)."""
    from urllib.parse import parse_qs, urlsplit

    from core.errors import NotFound
    from core.identity.sessions import SessionView

    parts = urlsplit(link)
    request_id = uuid.UUID(parts.path.split("/")[3])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    with system_session(platform.db) as session:
        request = session.get(PrivacyRequest, request_id)
        view = SessionView(id_hash="x" * 64, identity_id=str(request.identity_id), email="",
                           email_verified=True, account_id=str(request.account_id),
                           role="therapist", display_name="", tenant_id=None, tenant_name=None,
                           tenant_slug=None, created_at="", last_seen_at="", accounts=())
    real_now = clock.now
    clock.now = lambda: real_now() + timedelta(hours=72, minutes=1)
    try:
        with UnitOfWork(platform.db, tenant=TenantContext.system()) as uow, \
                pytest.raises(NotFound):
            privacy_exports.open_download(uow, platform.app.extensions["settings"].secret_key,
                                          request_id, view, query["expires"],
                                          query["signature"])
    finally:
        clock.now = real_now


def _zip_of(platform: Platform, browser, email: str) -> tuple[zipfile.ZipFile, str]:
    notes = browser.get("/api/notifications").get_json()["notifications"]
    [ready] = [n for n in notes if n["kind"] == "personal_export_ready"]
    mail = platform.last_mail_to(email)
    assert mail["Subject"] == "Your copy of your data is ready"
    assert ready["link"] in mail.get_body(("plain",)).get_content()
    _no_download_after_72_hours(platform, ready["link"])
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


def _run_privacy_jobs(platform: Platform) -> None:
    worker_side_of(platform.app).enqueue("run_privacy_jobs")
    platform.settle()


def _database_dump(db) -> str:
    """Every row of every table, as text: pg_dump on PostgreSQL, iterdump on SQLite."""
    if db.dialect == "postgresql":
        url = sa.engine.make_url(TEST_DATABASE_URL).set(database=db.engine.url.database)
        url = url.set(drivername="postgresql")
        return subprocess.run(
            ["pg_dump", "--data-only", "--no-owner", url.render_as_string(hide_password=False)],
            check=True, capture_output=True, text=True).stdout
    with db.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        return "\n".join(raw.iterdump())


def _cache_entries(platform: Platform) -> str:
    """Every entry of the cache's regions, key and value (rate-limit counters are not cache
    entries: see `_rate_limit_keys`)."""
    cache = platform.app.extensions["services"].cache
    client = getattr(cache, "client", None)
    if client is None:  # the in-process cache
        return repr(getattr(cache, "_values", {}))
    read = {b"string": client.get, b"hash": client.hgetall, b"set": client.smembers,
            b"list": lambda key: client.lrange(key, 0, -1),
            b"zset": lambda key: client.zrange(key, 0, -1)}
    return "\n".join(f"{key!r} {read[client.type(key)](key)!r}"
                     for key in client.scan_iter(match=f"{cache.prefix}*", count=1000))


def _rate_limit_keys(platform: Platform) -> dict[str, int]:
    """Rate-limit counters (keyed by IP for anonymous requests) and their time to live."""
    client = getattr(platform.app.extensions["services"].cache, "client", None)
    if client is None:
        return {}
    return {key.decode(): client.ttl(key) for key in client.scan_iter(
        match="platform-limits:*", count=1000)}


def _files(root: Path) -> str:
    """Every file in the file store, ZIPs unpacked."""
    texts = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        texts.append(data.decode("utf-8", "replace"))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                texts.extend(archive.read(name).decode("utf-8", "replace")
                             for name in archive.namelist())
    return "\n".join(texts)


@pytest.fixture
def erasing_platform(settings, db, smtp_server, request, tmp_path):
    """As `platform`, with a file store of the test's own (to search it whole)."""
    redis_url = request.getfixturevalue("redis_url") if _has_redis() else None
    configured = settings.with_overrides(smtp_url=smtp_server.url, redis_url=redis_url,
                                         storage_url=f"file://{tmp_path / 'files'}")
    app = make_app(configured, db)
    worker = EmbeddedWorker(app)
    yield Platform(app=app, smtp=smtp_server, worker=worker, db=db), tmp_path / "files"
    worker.stop()


def test_erasure_after_its_cooling_off_leaves_no_trace_but_a_pseudonymised_audit_log(
        erasing_platform, monkeypatch) -> None:
    platform, files = erasing_platform
    harbour, _, first_email, _, browser = _person(platform)
    db = platform.db
    # They moved their login to another address: both are theirs.
    email = "grace.hopper@elsewhere.example"
    assert post_form(browser, "/settings/email", {"new_email": email, "password": PASSWORD},
                     page="/settings").status_code == 302
    confirm = link_in(platform.last_mail_to(email), "/settings/email/confirm/")
    assert post_form(browser, confirm, {}, page=confirm).status_code == 302
    assert platform.last_mail_to(first_email)["Subject"]  # the old address was told
    # Their data also passes through the cache and into the file store.
    for path in ("/settings", "/dashboard", "/api/notifications", "/account/sessions"):
        browser.get(path)
    assert post_form(browser, "/settings/privacy/export", {"password": PASSWORD},
                     page="/settings").status_code == 302
    # An admin exported the audit log filtered by their address: that file holds them too.
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        admin = signup.create_admin(uow, "auditor@platform.example", PASSWORD)
        audit_exports.request_export(uow, audit_exports.Scope(admin.id, None),
                                     Filters(actor=email), "jsonl")
        uow.commit()
    _relay(platform)
    assert len(list((files / "audit-exports").iterdir())) == 1
    assert email in _files(files) and email in _cache_entries(platform)
    with system_session(db) as session:
        identity_id = identity_by_email(session, email).id
        accounts = set(session.execute(sa.select(Account.id).where(
            Account.identity_id == identity_id)).scalars())
        names = set(session.execute(sa.select(Account.display_name).where(
            Account.identity_id == identity_id)).scalars())
        mails = session.execute(sa.select(sa.func.count()).select_from(MailLog).where(
            MailLog.recipient_hash.in_([recipient_hash(email), recipient_hash(first_email)]))
        ).scalar_one()
    assert mails > 0 and CLIENT_NAME in names

    assert post_form(browser, "/settings/privacy/erasure", {"password": PASSWORD},
                     page="/settings").status_code == 302
    assert "Your erasure is scheduled for" in browser.get("/settings").get_data(as_text=True)
    scheduled = platform.last_mail_to(email)
    assert scheduled["Subject"].startswith("Your data will be erased on")

    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(days=6, hours=1))
    _run_privacy_jobs(platform)
    reminder = platform.last_mail_to(email)
    assert reminder["Subject"].startswith("Reminder: your data will be erased on")
    assert platform.count(Identity, Identity.id == identity_id) == 1  # not yet

    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(days=7, minutes=1))
    _run_privacy_jobs(platform)
    _audit_all(db)

    needles = {email, first_email, FULL_NAME, PHONE, IP, *names}
    dump, cached, stored = _database_dump(db), _cache_entries(platform), _files(files)
    for needle in needles:
        assert needle not in dump, f"{needle!r} is still in the database"
        assert needle not in cached, f"{needle!r} is still in the cache"
        assert needle not in stored, f"{needle!r} is still in the file store"
    # Rate-limit counters keyed by their address are no cache: they end with their minute.
    assert all(0 < ttl <= 60 for key, ttl in _rate_limit_keys(platform).items() if IP in key)

    with system_session(db) as session:
        [request] = session.execute(sa.select(PrivacyRequest).where(
            PrivacyRequest.kind == "erasure")).scalars().all()
        pseudonym = request.pseudonym
        assert request.status == "completed" and pseudonym is not None
        # The e-mail log keeps what proves delivery, under the pseudonym.
        assert session.execute(sa.select(sa.func.count()).select_from(MailLog).where(
            MailLog.recipient_hash == recipient_hash(f"erased:{pseudonym}"))).scalar_one() \
            >= mails
        assert session.execute(sa.select(sa.func.count()).select_from(MailLog).where(
            MailLog.recipient_hash.in_([recipient_hash(first_email), recipient_hash(email)]))
        ).scalar_one() == 0
        theirs = session.execute(sa.select(AuditEntry).where(
            AuditEntry.actor_account_id == pseudonym)).scalars().all()
        assert theirs, "their audit entries are kept"
        assert {e.ip for e in theirs} <= {"203.0.113.0", None}
        assert "203.0.113.0" in {e.ip for e in theirs}
        assert {e.personal_salt for e in theirs} == {None}
        assert session.execute(sa.select(sa.func.count()).select_from(AuditEntry).where(
            AuditEntry.actor_account_id.in_(accounts))).scalar_one() == 0
        steps = set(session.execute(sa.select(AuditEntry.type).where(AuditEntry.type.in_(
            ["ERASURE_REQUESTED", "ERASURE_COMPLETED"]))).scalars())
    assert steps == {"ERASURE_REQUESTED", "ERASURE_COMPLETED"}
    verified = platform.app.test_cli_runner().invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output

    # Closed: the open session is gone and the login is refused. (Searched for before: these
    # visits are new, anonymous entries of their own.)
    gone = browser.get("/settings")
    assert gone.status_code == 302 and "/login" in gone.headers["Location"]
    assert login(platform.client(), email).status_code != 302

    # The practice they ran goes on for its client, without them.
    left = platform.client()
    assert login(left, harbour.client_email).status_code == 302
    assert left.get("/client").status_code == 200

    # The address is free: whoever signs up with it is someone new.
    with UnitOfWork(db) as uow:
        signup.signup_therapist(uow, practice_name="Fresh Start", display_name="Someone",
                                email=email, password=PASSWORD)
        uow.commit()
        assert identity_by_email(uow.session, email).id != identity_id


def test_a_client_under_a_legal_hold_is_restricted_then_erased_when_the_hold_ends(
        platform, monkeypatch) -> None:
    db = platform.db
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        signup.create_admin(uow, "auditor@platform.example", PASSWORD)
        uow.commit()
    owner = platform.client()
    assert login(owner, harbour.therapist_email).status_code == 302
    until = (clock.now() + timedelta(days=30)).date()
    placed = post_form(owner, "/therapist/privacy/holds", {
        "account_id": str(harbour.client.id), "reason": "Complaint to the regulator pending",
        "until": until.isoformat()}, page="/therapist/privacy")
    assert placed.status_code == 302
    assert "The legal hold is in place" in owner.get("/therapist/privacy").get_data(
        as_text=True)

    person = platform.client()
    assert login(person, harbour.client_email).status_code == 302
    told = person.get("/settings").get_data(as_text=True)
    assert "Harbour Counselling keeps your client record" in told
    assert f"until {until:%d %B %Y}" in told
    assert post_form(person, "/settings/privacy/erasure", {"password": PASSWORD},
                     page="/settings").status_code == 302
    platform.settle()
    assert "Harbour Counselling keeps your client record" in platform.last_mail_to(
        harbour.client_email).get_body(("plain",)).get_content()

    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(days=7, minutes=1))
    _run_privacy_jobs(platform)
    _audit_all(db)
    with system_session(db) as session:
        [request] = session.execute(sa.select(PrivacyRequest).where(
            PrivacyRequest.kind == "erasure")).scalars().all()
        [record] = session.execute(sa.select(RestrictedRecord)).scalars().all()
        assert request.status == "restricted" and request.kept_until is not None
        assert request.kept_until.date() == until
        assert harbour.client_email in json.dumps(record.data)
        assert identity_by_email(session, harbour.client_email) is None  # closed
        assert session.get(Account, harbour.client.id) is None
        assert session.execute(sa.select(AuditEntry.type).where(
            AuditEntry.type == "DATA_RESTRICTED")).scalars().all() == ["DATA_RESTRICTED"]
    assert login(platform.client(), harbour.client_email).status_code != 302

    # Restricted: the practice sees the request, not the data; an admin reads it with a reason.
    assert login(owner, harbour.therapist_email).status_code == 302  # a week later
    requests_page = owner.get("/therapist/privacy").get_data(as_text=True)
    assert "Restricted" in requests_page and harbour.client_email not in requests_page
    assert owner.get(f"/admin/privacy/restricted/{record.id}").status_code == 404
    admin = platform.client()
    assert login(admin, "auditor@platform.example").status_code == 302
    assert 'href="/admin/privacy"' in admin.get("/admin").get_data(as_text=True)
    listed = admin.get("/admin/privacy").get_data(as_text=True)
    assert "Erasure" in listed and "Restricted" in listed and str(record.id) in listed
    path = f"/admin/privacy/restricted/{record.id}"
    no_reason = post_form(admin, path, {"reason": "x"}, page=path)
    assert harbour.client_email not in no_reason.get_data(as_text=True)
    read = post_form(admin, path, {"reason": "Regulator asked for the client file, case 42"},
                     page=path)
    assert read.status_code == 200 and harbour.client_email in read.get_data(as_text=True)
    platform.settle()
    _audit_all(db)
    with system_session(db) as session:
        [viewed] = session.execute(sa.select(AuditEntry).where(
            AuditEntry.type == "RESTRICTED_DATA_VIEWED")).scalars().all()
        assert viewed.details["reason"] == "Regulator asked for the client file, case 42"

    # While the hold lasts, the job keeps it; once it has ended, the job finishes the erasure.
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(days=29))
    _run_privacy_jobs(platform)
    assert platform.count(RestrictedRecord) == 1
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(days=31))
    _run_privacy_jobs(platform)
    _audit_all(db)
    assert platform.count(RestrictedRecord) == 0
    with system_session(db) as session:
        assert session.get(PrivacyRequest, request.id).status == "completed"
        assert "ERASURE_COMPLETED" in set(session.execute(sa.select(AuditEntry.type)).scalars())
    dump = _database_dump(db)
    assert harbour.client_email not in dump and "Client of Harbour Counselling" not in dump
    verified = platform.app.test_cli_runner().invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output


def test_an_erasure_can_be_cancelled_during_its_cooling_off_and_then_nothing_is_erased(
        platform, monkeypatch) -> None:
    db = platform.db
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    person = platform.client()
    assert login(person, harbour.client_email).status_code == 302
    assert post_form(person, "/settings/privacy/erasure", {"password": PASSWORD},
                     page="/settings").status_code == 302
    again = post_form(person, "/settings/privacy/erasure", {"password": PASSWORD},
                      page="/settings")
    assert again.status_code == 302
    assert "Your erasure is scheduled already" in person.get("/settings").get_data(
        as_text=True)
    assert post_form(person, "/settings/privacy/erasure/cancel", {},
                     page="/settings").status_code == 302
    page = person.get("/settings").get_data(as_text=True)
    assert "Your erasure is cancelled; nothing was erased." in page
    assert "Erase my login and my data" in page
    assert post_form(person, "/settings/privacy/erasure/cancel", {},
                     page="/settings").status_code == 302
    assert "No erasure is scheduled." in person.get("/settings").get_data(as_text=True)

    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(days=8))
    _run_privacy_jobs(platform)
    _audit_all(db)
    assert platform.count(Identity, Identity.email == harbour.client_email) == 1
    with system_session(db) as session:
        [request] = session.execute(sa.select(PrivacyRequest)).scalars().all()
        assert request.status == "cancelled"
        steps = sorted(session.execute(sa.select(AuditEntry.type).where(AuditEntry.type.in_(
            ["ERASURE_REQUESTED", "ERASURE_CANCELLED", "ERASURE_COMPLETED"]))).scalars())
    assert steps == ["ERASURE_CANCELLED", "ERASURE_REQUESTED"]


def test_practice_settings_refuse_bad_input_with_a_clear_message(platform) -> None:
    harbour = practice(platform.db, "Harbour Counselling", slug_hint="harbour")
    owner = platform.client()
    assert login(owner, harbour.therapist_email).status_code == 302
    for path, data, message in (
            ("/therapist/privacy/retention", {"months": "forever"},
             "Enter a whole number of months."),
            ("/therapist/privacy/retention", {"months": "-3"}, "Between 0 and 600 months."),
            ("/therapist/privacy/holds", {"account_id": "nope", "reason": "Because"},
             "There is nothing at this address."),
            ("/therapist/privacy/holds", {"account_id": str(harbour.client.id),
                                          "reason": "Court order", "until": "31/12/2030"},
             "Enter a date as YYYY-MM-DD, or none."),
            ("/therapist/privacy/holds", {"account_id": str(harbour.client.id),
                                          "reason": ""}, "Say why the records must be kept.")):
        answer = post_form(owner, path, data, page="/therapist/privacy")
        assert answer.status_code == 302, (path, data)
        assert message in owner.get("/therapist/privacy").get_data(as_text=True), message
    assert post_form(owner, "/therapist/privacy/retention", {"months": "120"},
                     page="/therapist/privacy").status_code == 302
    client = platform.client()
    assert login(client, harbour.client_email).status_code == 302
    assert "because of its record-retention period of 120 months" in client.get(
        "/settings").get_data(as_text=True)
    # A client's pages for practices and admins are not theirs to see.
    for path in ("/therapist/privacy", "/admin/privacy"):
        assert client.get(path).status_code == 404


def test_the_audit_log_accepts_only_pseudonymisation(db) -> None:
    """Outside the controlled path every UPDATE is refused; on it, only personal columns may
    change, and only with the salt removed."""
    from tests.support.audit import write_entries

    write_entries(db, 2, origin=None)
    refusals = [
        "UPDATE audit_entries SET user_agent = NULL",
        "UPDATE audit_entries SET type = 'USER_LOGIN', personal_salt = NULL",
        "UPDATE audit_entries SET user_agent = 'x'",  # the salt stays: refused
    ]
    for number, statement in enumerate(refusals):
        with db.engine.connect() as connection:
            if db.dialect == "postgresql":
                connection.execute(sa.text("SELECT set_config('app.all_tenants', 'on', true)"))
                if number:
                    connection.execute(sa.text(
                        "SELECT set_config('app.audit_pseudonymising', 'on', true)"))
            elif number:
                connection.execute(sa.text("INSERT INTO audit_pseudonymise_permits DEFAULT "
                                           "VALUES"))
            with pytest.raises(sa.exc.DBAPIError, match=r"append-only|permission denied"):
                connection.execute(sa.text(statement))
            connection.rollback()


def test_a_practice_sees_and_holds_only_its_own_clients(platform) -> None:
    db = platform.db
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    elm = practice(db, "Elm Street", slug_hint="elm")
    owner = platform.client()
    assert login(owner, harbour.therapist_email).status_code == 302
    assert post_form(owner, "/therapist/privacy/holds", {
        "account_id": str(harbour.client.id), "reason": "Court order"},
        page="/therapist/privacy").status_code == 302
    person = platform.client()
    assert login(person, harbour.client_email).status_code == 302
    assert post_form(person, "/settings/privacy/export", {"password": PASSWORD},
                     page="/settings").status_code == 302
    platform.settle()

    other = platform.client()
    assert login(other, elm.therapist_email).status_code == 302
    # Elm's owner cannot hold Harbour's client, nor lift Harbour's hold, nor see its requests.
    assert post_form(other, "/therapist/privacy/holds", {
        "account_id": str(harbour.client.id), "reason": "Not mine"},
        page="/therapist/privacy").status_code == 302
    page = other.get("/therapist/privacy").get_data(as_text=True)
    assert "There is nothing at this address." in page
    assert "Court order" not in page and "No requests yet." in page
    assert str(harbour.client.id) not in page and harbour.client_email not in page
    [hold] = platform.rows(LegalHold)
    assert post_form(other, f"/therapist/privacy/holds/{hold.id}/release", {},
                     page="/therapist/privacy").status_code == 404
    assert platform.rows(LegalHold)[0].released_at is None
    harbour_page = owner.get("/therapist/privacy").get_data(as_text=True)
    assert "Court order" in harbour_page and "Ready" in harbour_page
    # The owner picks a client by name, and the hold names whom it is on.
    assert (f'<option value="{harbour.client.id}">{harbour.client.display_name} '
            f"({harbour.client_email})</option>") in harbour_page
    assert f"<li>{harbour.client.display_name} — Court order" in harbour_page


def test_an_open_ended_hold_keeps_the_records_until_the_practice_lifts_it(
        platform, monkeypatch) -> None:
    db = platform.db
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    owner = platform.client()
    assert login(owner, harbour.therapist_email).status_code == 302
    assert post_form(owner, "/therapist/privacy/holds", {
        "account_id": str(harbour.client.id), "reason": "Litigation"},
        page="/therapist/privacy").status_code == 302
    person = platform.client()
    assert login(person, harbour.client_email).status_code == 302
    assert "until the practice lifts its legal hold" in person.get("/settings").get_data(
        as_text=True)
    assert post_form(person, "/settings/privacy/erasure", {"password": PASSWORD},
                     page="/settings").status_code == 302
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(days=400))
    _run_privacy_jobs(platform)
    [record] = platform.rows(RestrictedRecord)
    assert record.kept_until is None
    _run_privacy_jobs(platform)  # run again, 400 days on: still held
    assert platform.count(RestrictedRecord) == 1

    assert login(owner, harbour.therapist_email).status_code == 302
    [hold] = platform.rows(LegalHold)
    assert post_form(owner, f"/therapist/privacy/holds/{hold.id}/release", {},
                     page="/therapist/privacy").status_code == 302
    _run_privacy_jobs(platform)
    assert platform.count(RestrictedRecord) == 0
    [request] = platform.rows(PrivacyRequest)
    assert request.status == "completed"
    assert platform.rows(LegalHold)[0].reason == "[erased]"
