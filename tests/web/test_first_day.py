"""The first day's pages without JavaScript: the clients table, a client's page and actions,
the inbox, settings, and invitation links that have run their course."""

from __future__ import annotations

import re

import sqlalchemy as sa

from core.identity.models import Account, Identity
from core.notifications.models import Notification
from core.notifications.service import notify
from core.scoping import TenantContext, system_session
from core.uow import UnitOfWork
from tests.support.factories import practice
from tests.support.flows import login, post_form


def _notify(app, db, owner, title: str, link: str | None = None) -> None:
    with UnitOfWork(db, tenant=TenantContext.of(owner.tenant.id)) as uow:
        notify(uow, app.extensions["services"].notifications, account_id=owner.therapist.id,
               tenant_id=owner.tenant.id, kind="test", title=title, link=link)
        uow.commit()


def _rows(db, model, *where) -> list:
    with system_session(db) as session:
        return list(session.execute(sa.select(model).where(*where)).scalars())


def test_the_clients_table_searches_sorts_and_pages(app, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    client = app.test_client()
    login(client, harbour.therapist_email)
    page = client.get("/therapist/clients").get_data(as_text=True)
    assert harbour.client_email in page and "Set up" in page
    found = client.get("/therapist/clients?q=CLIENT@harbour").get_data(as_text=True)
    assert "1 client match" in found
    none = client.get("/therapist/clients?q=nobody").get_data(as_text=True)
    assert "No client matches" in none
    odd = client.get("/therapist/clients?sort=x&dir=y&after=%ff%fe&before=z")
    assert odd.status_code == 200
    assert 'aria-sort="descending"' in client.get(
        "/therapist/clients?sort=joined&dir=desc").get_data(as_text=True)


def test_removing_a_client_asks_first_and_keeps_their_login(app, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    therapist = app.test_client()
    login(therapist, harbour.therapist_email)
    path = f"/therapist/clients/{harbour.client.id}/remove"
    unconfirmed = post_form(therapist, path, {}, page=path)
    assert unconfirmed.headers["Location"] == path
    assert _rows(db, Account, Account.id == harbour.client.id)
    done = post_form(therapist, path, {"confirm": "remove"}, page=path)
    assert done.headers["Location"] == "/therapist/clients"
    assert not _rows(db, Account, Account.id == harbour.client.id)
    assert _rows(db, Identity, Identity.email == harbour.client_email)
    assert therapist.get(f"/therapist/clients/{harbour.client.id}").status_code == 404


def test_a_client_cannot_change_the_practice(app, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    client = app.test_client()
    login(client, harbour.client_email)
    assert "Your practice" not in client.get("/settings").get_data(as_text=True).split(
        "Password and sessions")[1]
    refused = post_form(client, "/settings/practice", {"name": "Mine now"}, page="/settings")
    assert refused.status_code == 403


def test_the_inbox_keeps_notifications_and_reads_them(app, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    elm = practice(db, "Elm Street", slug_hint="elm")
    _notify(app, db, harbour, "New client: Bo", link=f"/therapist/clients/{harbour.client.id}")
    _notify(app, db, harbour, "Your practice is ready")
    _notify(app, db, elm, "Elm's own")
    client = app.test_client()
    login(client, harbour.therapist_email)
    page = client.get("/inbox").get_data(as_text=True)
    assert "New client: Bo" in page and "Elm&#39;s own" not in page
    assert re.search(r'data-testid="unread-count" data-unread="2"', page)
    [bo] = _rows(db, Notification, Notification.title == "New client: Bo")
    opened = post_form(client, "/inbox/open", {"id": str(bo.id)}, page="/inbox")
    assert opened.headers["Location"] == f"/therapist/clients/{harbour.client.id}"
    # The bell counts one fewer at once (its cached count went stale with the read).
    assert 'data-unread="1"' in client.get("/inbox").get_data(as_text=True)
    [elms] = _rows(db, Notification, Notification.title == "Elm's own")
    assert post_form(client, "/inbox/read", {"id": str(elms.id)}, page="/inbox") \
        .status_code == 404
    assert post_form(client, "/inbox/read", {"id": "nope"}, page="/inbox").status_code == 400
    post_form(client, "/inbox/read-all", {}, page="/inbox")
    assert 'data-unread="0"' in client.get("/inbox").get_data(as_text=True)
    assert [n.id for n in _rows(db, Notification, Notification.read_at.is_(None))] == [elms.id]


def test_a_profile_with_a_wrong_answer_is_shown_again_with_what_was_typed(app, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    client = app.test_client()
    login(client, harbour.therapist_email)
    refused = post_form(client, "/settings/profile",
                        {"display_name": "Ada", "full_name": "Ada L", "phone": "call me",
                         "time_zone": "Asia/Tokyo", "preferred_language": "en"},
                        page="/settings")
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "Use digits, spaces and an optional leading +" in html
    assert 'value="call me"' in html and '<option value="Asia/Tokyo" selected>' in html
    saved = post_form(client, "/settings/profile",
                      {"display_name": "Ada", "full_name": "Ada L", "phone": "+81 3 1234 5678",
                       "time_zone": "Asia/Tokyo", "preferred_language": "en"},
                      page="/settings")
    assert saved.status_code == 302
    assert " JST</time>" in client.get("/therapist").get_data(as_text=True)


def test_a_new_join_link_retires_the_old_one(app, db):
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    client = app.test_client()
    login(client, harbour.therapist_email)
    old = f"/join/{harbour.tenant.slug}"
    assert app.test_client().get(old).status_code == 200
    post_form(client, "/settings/practice/join-link", {}, page="/settings")
    new = re.search(r'data-testid="join-link">http://[^/]+(/join/[^<]+)<',
                    client.get("/settings").get_data(as_text=True)).group(1)
    gone = app.test_client().get(old)
    assert gone.status_code == 404 and "no longer works" in gone.get_data(as_text=True)
    assert app.test_client().get(new).status_code == 200


def test_asking_for_a_new_invitation_needs_an_expired_one(app, db):
    visitor = app.test_client()
    assert post_form(visitor, "/invite/no-such-link/renew", {},
                     page="/login").status_code == 404
    assert visitor.get("/invite/no-such-link").status_code == 404
