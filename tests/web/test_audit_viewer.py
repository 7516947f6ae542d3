"""The audit log as an admin and a practice owner use it: filters, keyset pages, entry pages,
exports, and who may see what."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from core import clock
from core.audit import exports, viewer, writer
from core.audit.models import AuditEntry, AuditExport
from core.errors import ValidationFailed
from core.events.types import EventType
from core.identity import signup
from core.scoping import TenantContext, system_session
from core.uow import Origin, UnitOfWork
from tests.support.audit import chain_entries
from tests.support.factories import practice
from tests.support.flows import PASSWORD, login, logout, post_form

ADMIN_EMAIL = "auditor@platform.example"
UTC_ZONE = ZoneInfo("UTC")


def _audit_all(db) -> None:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        while writer.write_pending(uow):
            pass


def _record(db, event_type, *, tenant_id=None, actor=None, ip="198.51.100.1", at=None,
            subject=None, **payload) -> None:
    saved = clock.now
    if at is not None:
        clock.now = lambda: at
    try:
        with UnitOfWork(db, origin=Origin(ip=ip, user_agent="agent/1"),
                        tenant=TenantContext.system()) as uow:
            uow.record(event_type, tenant_id=tenant_id, actor_account_id=actor,
                       subject=subject, payload=payload)
            uow.commit()
            writer.write_pending(uow)
    finally:
        clock.now = saved


@pytest.fixture
def admin(db):
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        account = signup.create_admin(uow, ADMIN_EMAIL, PASSWORD)
        uow.commit()
    return account


@pytest.fixture
def two_practices(db, app):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    elm = practice(db, "Elm Street", slug_hint="elm")
    _audit_all(db)
    return harbour, elm


def _view(db, **args) -> list[AuditEntry]:
    filters = viewer.parse_filters(MultiDict(args).to_dict(flat=False), UTC_ZONE)
    with system_session(db) as session:
        return viewer.page(session, filters, size=500).entries


# -- filters ---------------------------------------------------------------------------------

@pytest.fixture
def varied(db, two_practices):
    harbour, elm = two_practices
    old = datetime(2026, 1, 15, 12, tzinfo=UTC)
    _record(db, EventType.LOGIN_FAILED, ip="203.0.113.9", at=old, reason="bad password")
    _record(db, EventType.ACCESS_DENIED, tenant_id=elm.tenant.id, actor=elm.client.id,
            ip="203.0.113.77", path="/admin")
    _record(db, EventType.TEST_EMAIL_REQUESTED, ip="2001:db8::5", to="ops@example.com")
    return harbour, elm


def test_each_filter_narrows_the_view(db, varied):
    harbour, elm = varied
    everything = _view(db)
    assert len(everything) > 10
    by_practice = _view(db, practice=str(harbour.tenant.id))
    assert by_practice and {e.tenant_id for e in by_practice} == {harbour.tenant.id}
    login_failed = _view(db, type="LOGIN_FAILED")
    assert [e.details for e in login_failed] == [{"reason": "bad password"}]
    several = _view(db, type=["LOGIN_FAILED", "ACCESS_DENIED"])
    assert {e.type for e in several} == {"LOGIN_FAILED", "ACCESS_DENIED"} and len(several) == 2
    by_email = _view(db, actor="client@elm.example")
    assert by_email and all(e.actor_account_id == elm.client.id
                            or e.subject == f"identity:{elm.client.identity_id}"
                            for e in by_email)
    assert {e.type for e in _view(db, actor=str(elm.client.id))} >= {"ACCESS_DENIED"}
    assert [e.ip for e in _view(db, ip="203.0.113.0/24")] == ["203.0.113.77", "203.0.113.9"]
    assert [e.ip for e in _view(db, ip="2001:db8::/32")] == ["2001:db8::5"]
    assert [e.type for e in _view(db, outcome="denied")] == ["ACCESS_DENIED"]
    assert [e.type for e in _view(db, outcome="failure")] == ["LOGIN_FAILED"]
    january = _view(db, **{"from": "2026-01-01", "to": "2026-01-31"})
    assert [e.type for e in january] == ["LOGIN_FAILED"]
    assert [e.id for e in _view(db, **{"from": "2026-02-01"})] == [
        e.id for e in everything if e.type != "LOGIN_FAILED"]
    assert _view(db, actor="nobody@nowhere.example") == []


def test_malformed_filters_say_what_is_wrong(db):
    for args, field in (({"ip": "not-an-ip"}, "ip"), ({"type": "NO_SUCH"}, "type"),
                        ({"from": "yesterday"}, "from"), ({"outcome": "meh"}, "outcome")):
        with pytest.raises(Exception) as refused:
            viewer.parse_filters(MultiDict(args).to_dict(flat=False), UTC_ZONE)
        assert field in refused.value.errors  # type: ignore[attr-defined]


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_a_date_at_the_end_of_the_calendar_is_refused_with_a_message(client, admin, day):
    """The last day's end is the next day's start: past 9998 that is no date at all (it was a
    500), and the first day's start east of UTC is before year one."""
    assert login(client, ADMIN_EMAIL).status_code == 302
    for name in ("from", "to"):
        response = client.get("/admin/audit", query_string={name: day})
        assert response.status_code == 422, (name, day)
        assert "Enter a date from 1970-01-01 to 9998-12-31." in response.get_data(as_text=True)
    with pytest.raises(ValidationFailed):
        viewer.parse_filters({"from": [day]}, ZoneInfo("Asia/Tokyo"))


# -- keyset pages ----------------------------------------------------------------------------

def test_keyset_pages_neither_repeat_nor_skip_while_entries_arrive(db):
    for n in range(120):
        _record(db, EventType.TEST_EMAIL_REQUESTED, n=n)
    with system_session(db) as session:
        existing = list(session.execute(sa.select(AuditEntry.id).order_by(
            AuditEntry.created_at.desc(), AuditEntry.id.desc())).scalars())
    filters = viewer.Filters()
    seen: list[int] = []
    cursor = None
    while True:
        with system_session(db) as session:
            page = viewer.page(session, filters, older_than=cursor, size=25)
        seen.extend(e.id for e in page.entries)
        # New entries arrive between every two pages, from another thread.
        writer_thread = threading.Thread(target=lambda: [
            _record(db, EventType.TEST_EMAIL_REQUESTED, late=True) for _ in range(3)])
        writer_thread.start()
        writer_thread.join()
        if page.older is None:
            break
        cursor = page.older
    assert len(seen) == len(set(seen)), "a page repeated an entry"
    assert seen == existing, "the walk skipped or reordered an entry that was there"


def test_newer_pages_walk_back_to_the_first(db):
    for n in range(30):
        _record(db, EventType.TEST_EMAIL_REQUESTED, n=n)
    filters = viewer.Filters()
    with system_session(db) as session:
        first = viewer.page(session, filters, size=10)
        second = viewer.page(session, filters, older_than=first.older, size=10)
        back = viewer.page(session, filters, newer_than=second.newer, size=10)
    assert [e.id for e in back.entries] == [e.id for e in first.entries]
    assert back.newer is None and second.newer is not None


# -- pages and who sees what -----------------------------------------------------------------

def test_admin_sees_every_practice_with_filters_kept_in_the_links(client, db, admin, varied):
    harbour, _elm = varied
    for n in range(60):
        _record(db, EventType.TEST_EMAIL_REQUESTED, tenant_id=harbour.tenant.id, n=n)
    assert login(client, ADMIN_EMAIL).status_code == 302
    html = client.get(f"/admin/audit?practice={harbour.tenant.id}&type=TEST_EMAIL_REQUESTED"
                      ).get_data(as_text=True)
    assert html.count("<code>TEST_EMAIL_REQUESTED</code>") == viewer.PAGE_SIZE
    older = re.search(r'href="(/admin/audit\?[^"]*older=[^"]+)"', html).group(1)
    assert f"practice={harbour.tenant.id}" in older and "type=TEST_EMAIL_REQUESTED" in older
    rest = client.get(older.replace("&amp;", "&")).get_data(as_text=True)
    assert rest.count("<code>TEST_EMAIL_REQUESTED</code>") == 10
    everything = client.get("/admin/audit?type=LOGIN_FAILED&type=ACCESS_DENIED").get_data(
        as_text=True)
    assert "Elm Street" in everything and "Platform" in everything


def test_a_therapist_sees_only_their_practice_even_when_asking_for_another(client, db,
                                                                         varied):
    harbour, elm = varied
    _record(db, EventType.TEST_EMAIL_REQUESTED, tenant_id=elm.tenant.id, marker="elm-only")
    assert login(client, harbour.therapist_email).status_code == 302
    for url in ("/therapist/audit", f"/therapist/audit?practice={elm.tenant.id}",
                "/therapist/audit?type=ACCESS_DENIED"):
        html = client.get(url).get_data(as_text=True)
        assert "elm" not in html.lower() and "203.0.113.77" not in html
    with system_session(db) as session:
        elm_entry = session.execute(sa.select(AuditEntry.id).where(
            AuditEntry.tenant_id == elm.tenant.id)).scalars().first()
        own_entry = session.execute(sa.select(AuditEntry.id).where(
            AuditEntry.tenant_id == harbour.tenant.id)).scalars().first()
    assert client.get(f"/therapist/audit/entries/{own_entry}").status_code == 200
    assert client.get(f"/therapist/audit/entries/{elm_entry}").status_code == 404


def _offered_types(html: str) -> set[str]:
    select = re.search(r'<select[^>]*id="f-type".*?</select>', html, re.S).group(0)
    return set(re.findall(r'<option value="([A-Z_]+)"', select))


def test_a_practice_owner_is_offered_only_the_types_a_practice_can_have(client, admin,
                                                                      varied):
    harbour, _elm = varied
    assert login(client, harbour.therapist_email).status_code == 302
    offered = _offered_types(client.get("/therapist/audit").get_data(as_text=True))
    assert {"USER_LOGIN", "INVITATION_SENT", "ACCESS_DENIED"} <= offered
    assert not offered & {"HEALTH_INCIDENT_OPENED", "AUDIT_MONTH_DROPPED", "ADMIN_CREATED"}
    logout(client)
    assert login(client, ADMIN_EMAIL).status_code == 302
    assert _offered_types(client.get("/admin/audit").get_data(as_text=True)) == set(
        viewer.EVENT_TYPES)


def test_a_platform_type_typed_into_a_practice_viewer_is_refused_with_a_message(client, admin,
                                                                               varied):
    harbour, _elm = varied
    assert login(client, harbour.therapist_email).status_code == 302
    response = client.get("/therapist/audit", query_string={"type": "admin_created"})
    assert response.status_code == 422
    assert ("Recorded for the platform, never for a practice: ADMIN_CREATED."
            in response.get_data(as_text=True))
    assert client.get("/therapist/audit", query_string={"type": "USER_LOGIN"}).status_code == 200
    logout(client)
    assert login(client, ADMIN_EMAIL).status_code == 302
    assert client.get("/admin/audit", query_string={"type": "ADMIN_CREATED"}).status_code == 200


def test_filters_that_cannot_be_applied_come_back_as_typed_with_each_mistake_at_its_field(
        client, admin, varied):
    assert login(client, ADMIN_EMAIL).status_code == 302
    response = client.get("/admin/audit", query_string={
        "ip": "10.0.0.", "actor": "someone@example.com", "outcome": "failure",
        "type": "USER_LOGIN"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'value="10.0.0."' in page and 'value="someone@example.com"' in page
    assert '<option value="failure" selected>' in page
    assert '<option value="USER_LOGIN" selected>' in page
    assert ('aria-describedby="f-ip-error" aria-invalid="true"' in page
            and '<span class="error" id="f-ip-error">Enter an IP address (203.0.113.7) or a '
                'network (203.0.113.0/24).</span>' in page)
    assert "These filters could not be applied" in page
    assert 'id="entries-title"' not in page  # no entries, no export of a view that cannot be
    fixed = client.get("/admin/audit", query_string={"ip": "10.0.0.0/8", "type": "USER_LOGIN"})
    assert fixed.status_code == 200 and 'id="entries-title"' in fixed.get_data(as_text=True)


def test_a_non_admin_gets_404_and_an_access_denied_entry(client, db, two_practices, worker):
    harbour, _ = two_practices
    assert login(client, harbour.client_email).status_code == 302
    assert client.get("/admin/audit").status_code == 404
    assert client.get("/therapist/audit").status_code == 404
    worker.drain()
    with system_session(db) as session:
        denied = session.execute(sa.select(AuditEntry.details).where(
            AuditEntry.type == "ACCESS_DENIED")).scalars().all()
    assert {d["path"] for d in denied} == {"/admin/audit", "/therapist/audit"}


def test_the_entry_page_links_to_the_actor_and_the_practice(client, db, admin, varied):
    _harbour, elm = varied
    with system_session(db) as session:
        denied = session.execute(sa.select(AuditEntry).where(
            AuditEntry.type == "ACCESS_DENIED")).scalar_one()
    assert login(client, ADMIN_EMAIL).status_code == 302
    html = client.get(f"/admin/audit/entries/{denied.id}").get_data(as_text=True)
    assert f"/admin/practices/{elm.tenant.id}" in html
    assert f"/admin/audit?actor={elm.client.id}" in html
    assert "Client of Elm Street" in html and "203.0.113.77" in html
    assert denied.hash.hex() in html


def test_times_are_shown_in_the_viewers_time_zone(client, db, two_practices):
    harbour, _ = two_practices  # onboarded with time zone Europe/London
    newest = chain_entries(db, harbour.tenant.id)[-1]
    assert login(client, harbour.therapist_email).status_code == 302
    html = client.get("/therapist/audit").get_data(as_text=True)
    london = newest.created_at.astimezone(ZoneInfo("Europe/London"))
    assert london.strftime("%d %b %Y, %H:%M:%S %Z") in html
    assert "Times in Europe/London" in html


# -- exports ---------------------------------------------------------------------------------

def _export(client, area: str, fmt: str, **filters):
    page = f"/{area}/audit"
    return post_form(client, f"/{area}/audit/export", {"format": fmt, **filters}, page=page)


def test_a_small_export_streams_from_the_page_and_is_audited(client, db, admin, varied):
    harbour, elm = varied
    assert login(client, ADMIN_EMAIL).status_code == 302
    response = _export(client, "admin", "csv", type="ACCESS_DENIED")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["type"], r["ip"], r["practice_id"]) for r in rows] == [
        ("ACCESS_DENIED", "203.0.113.77", str(elm.tenant.id))]
    [entry] = [e for e in chain_entries(db, elm.tenant.id) if e.type == "ACCESS_DENIED"]
    assert rows[0]["hash"] == entry.hash.hex()
    lines = _export(client, "admin", "jsonl", practice=str(harbour.tenant.id)).get_data(
        as_text=True).splitlines()
    assert lines and {json.loads(line)["practice_id"] for line in lines} == {
        str(harbour.tenant.id)}
    _audit_all(db)
    with system_session(db) as session:
        exported = session.execute(sa.select(AuditEntry).where(
            AuditEntry.type == "AUDIT_EXPORTED").order_by(AuditEntry.id)).scalars().all()
    assert [(e.details["format"], e.details["rows"], e.details["via"]) for e in exported] == [
        ("csv", 1, "page"), ("jsonl", len(lines), "page")]
    assert exported[0].details["filters"]["type"] == ["ACCESS_DENIED"]
    assert exported[0].actor_account_id == admin.id


def test_csv_cells_that_would_run_as_formulas_are_defused(client, db, admin):
    _record(db, EventType.TEST_EMAIL_REQUESTED, subject="=HYPERLINK(\"http://x\")")
    assert login(client, ADMIN_EMAIL).status_code == 302
    body = _export(client, "admin", "csv", type="TEST_EMAIL_REQUESTED").get_data(as_text=True)
    assert "'=HYPERLINK" in body


def test_a_large_export_runs_on_a_worker_and_links_the_requester_alone(
        client, app, db, admin, two_practices, worker):
    harbour, _ = two_practices
    app.extensions["settings"] = app.extensions["settings"].with_overrides(
        audit_stream_export_limit=5)
    for n in range(12):
        _record(db, EventType.TEST_EMAIL_REQUESTED, n=n)
    assert login(client, ADMIN_EMAIL).status_code == 302
    response = _export(client, "admin", "jsonl", type="TEST_EMAIL_REQUESTED")
    assert response.status_code == 302
    assert "being prepared" in client.get(response.headers["Location"]).get_data(as_text=True)
    worker.drain()
    notes = client.get("/api/notifications").get_json()["notifications"]
    [ready] = [n for n in notes if n["kind"] == "audit_export_ready"]
    assert "12 entries" in ready["title"]
    download = client.get(ready["link"])
    assert download.status_code == 200
    lines = download.get_data(as_text=True).splitlines()
    assert sorted(json.loads(line)["metadata"]["n"] for line in lines) == list(range(12))
    # Someone else with the very same link gets nothing; nor does a tampered link.
    other = app.test_client()
    assert login(other, harbour.therapist_email).status_code == 302
    assert other.get(ready["link"]).status_code == 404
    assert client.get(ready["link"].replace("signature=", "signature=0")).status_code == 404
    with system_session(db) as session:
        export = session.execute(sa.select(AuditExport)).scalar_one()
    expired = exports.download_path(app.extensions["settings"].secret_key, export,
                                    clock.now() - timedelta(hours=25))
    assert client.get(expired).status_code == 404
    worker.drain()
    with system_session(db) as session:
        kinds = session.execute(sa.select(AuditEntry.type, AuditEntry.details).where(
            AuditEntry.type.in_(["AUDIT_EXPORTED", "AUDIT_EXPORT_DOWNLOADED"]))).all()
    assert sorted(k for k, _ in kinds) == ["AUDIT_EXPORTED", "AUDIT_EXPORT_DOWNLOADED"]
    assert [d["via"] for k, d in kinds if k == "AUDIT_EXPORTED"] == ["worker"]


def test_a_uuid_in_the_actor_filter_finds_an_identity_too(db, varied):
    _, elm = varied
    assert _view(db, actor=str(uuid.uuid4())) == []
    assert _view(db, actor=str(elm.client.identity_id))
