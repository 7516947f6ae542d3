"""What a hot page does not do: an anonymous page without a form sets no cookie, mints no CSRF
token and so varies on nothing; a logged-in page does not re-sign the cookie it was sent."""

from __future__ import annotations

from tests.support.factories import practice
from tests.support.flows import login, logout


def _sets_cookie(response) -> bool:
    return "Set-Cookie" in response.headers


def test_anonymous_pages_without_a_form_set_no_cookie(client) -> None:
    for path in ("/", "/terms", "/privacy", "/no/such/page"):
        response = client.get(path)
        assert not _sets_cookie(response), path
        assert "Cookie" not in response.headers.get("Vary", ""), path
        assert 'name="csrf-token"' not in response.get_data(as_text=True), path


def test_a_page_with_a_form_sets_the_cookie_its_token_needs(client) -> None:
    response = client.get("/login")
    assert _sets_cookie(response)
    assert 'name="csrf_token"' in response.get_data(as_text=True)
    again = client.get("/login")  # the same token, from the cookie it now sends
    assert not _sets_cookie(again)


def test_a_logged_in_page_neither_resigns_the_cookie_nor_loses_a_notice(client, db) -> None:
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    login(client, harbour.therapist_email)
    client.get("/therapist")
    response = client.get("/therapist")
    assert response.status_code == 200 and not _sets_cookie(response)
    assert 'name="csrf-token"' in response.get_data(as_text=True)  # for its JSON calls
    logout(client)
    assert "You are logged out." in client.get("/login").get_data(as_text=True)


def _nonces(response) -> tuple[set[str], str]:
    """The nonces the page's tags carry, and the one its policy allows."""
    import re

    in_page = set(re.findall(r'nonce="([^"]+)"', response.get_data(as_text=True)))
    policy = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"])
    return in_page, policy.group(1) if policy else ""


def test_a_page_kept_for_visitors_without_a_cookie_gets_each_response_its_own_nonce(
        app, client) -> None:
    from flask import template_rendered

    rendered: list[str] = []

    def record(_app, template, **_context) -> None:
        rendered.append(template.name)

    with template_rendered.connected_to(record, app):
        first, second = client.get("/"), client.get("/")
    assert rendered == ["home.html"]  # once: the second visitor got the kept page
    (first_tags, first_policy), (second_tags, second_policy) = _nonces(first), _nonces(second)
    assert first_tags == {first_policy} and second_tags == {second_policy}
    assert first_policy != second_policy and len(first_policy) >= 16
    body = second.get_data(as_text=True).replace(second_policy, first_policy)
    assert body == first.get_data(as_text=True)  # the same page, but for the nonce
    assert "Log in" in body and not _sets_cookie(second)


def test_a_visitor_with_a_cookie_never_gets_the_page_kept_for_those_without(
        app, client, db) -> None:
    anonymous = app.test_client().get("/terms").get_data(as_text=True)
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    login(client, harbour.therapist_email)
    signed_in = client.get("/terms")
    page = signed_in.get_data(as_text=True)
    assert page != anonymous and 'name="csrf-token"' in page
    tags, policy = _nonces(signed_in)
    assert tags == {policy}
    logout(client)  # flashes "You are logged out." for the next page this browser opens
    assert "You are logged out." in client.get("/privacy").get_data(as_text=True)


def test_a_changed_secret_key_stops_accepting_cookies_signed_with_the_old_one(app, client) -> None:
    assert _sets_cookie(client.get("/login"))
    assert not _sets_cookie(client.get("/login"))  # its cookie verified: the same token
    app.secret_key = "a-new-key-after-a-leak-" + "x" * 32
    assert _sets_cookie(client.get("/login"))  # the old cookie no longer verifies


def _token(response) -> str:
    import re

    match = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"',
                      response.get_data(as_text=True))
    assert match, "no CSRF token on the page"
    return match.group(1)


def test_a_kept_log_in_form_gives_each_visitor_a_token_that_logs_them_in(app, db) -> None:
    from flask import template_rendered

    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    app.config["TEMPLATES_AUTO_RELOAD"] = True  # as in development: nothing is kept
    fresh = app.test_client().get("/login")
    app.config["TEMPLATES_AUTO_RELOAD"] = False  # as in production (and the other tests)
    rendered: list[str] = []

    def record(_app, template, **_context) -> None:
        rendered.append(template.name)

    ada, ben = app.test_client(), app.test_client()
    with template_rendered.connected_to(record, app):
        pages = [ada.get("/login"), ben.get("/login")]
    assert rendered == ["auth/login.html"]
    assert all(_sets_cookie(page) for page in pages)  # each visitor's token in their session
    assert _token(pages[0]) != _token(pages[1])
    for page in (fresh, *pages):  # the same page as a fresh render, but for token and nonce
        tags, policy = _nonces(page)
        assert tags == {policy}
    same = [page.get_data(as_text=True).replace(_token(page), "T").replace(_nonces(page)[1], "N")
            for page in (fresh, *pages)]
    assert same[0] == same[1] == same[2]
    signed_in = login(ben, harbour.therapist_email)  # with the token of the kept page
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)[:300]
    assert ben.get("/therapist").status_code == 200
    stolen = ada.post("/login", data={"email": harbour.therapist_email, "password": "x",
                                      "csrf_token": _token(pages[1])})
    assert stolen.status_code == 400  # another visitor's token is no good in this session


def test_every_blank_form_kept_for_visitors_matches_a_fresh_render(app) -> None:
    for path in ("/signup", "/forgot-password", "/login"):
        app.config["TEMPLATES_AUTO_RELOAD"] = True
        fresh = app.test_client().get(path)
        app.config["TEMPLATES_AUTO_RELOAD"] = False
        kept = [app.test_client().get(path) for _ in range(2)]
        same = {page.get_data(as_text=True).replace(_token(page), "T")
                .replace(_nonces(page)[1], "N") for page in (fresh, *kept)}
        assert len(same) == 1, path
        assert all(_nonces(page)[0] == {_nonces(page)[1]} for page in kept), path


def test_a_page_with_a_form_per_row_gives_every_element_its_own_id(client, db) -> None:
    import re
    from collections import Counter

    from tests.support.flows import post_form

    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    login(client, harbour.therapist_email)
    for address in ("ada@harbour.example", "ben@harbour.example"):
        sent = post_form(client, "/therapist/invitations", {"email": address}, page="/therapist")
        assert sent.status_code == 302
    page = client.get("/therapist").get_data(as_text=True)
    forms = re.findall(r"<form[^>]*method=\"post\"[^>]*>.*?</form>", page, flags=re.S)
    assert len(forms) >= 5  # the invitation form, and resend and withdraw for each invitation
    assert all('name="csrf_token"' in form for form in forms)
    repeated = [i for i, n in Counter(re.findall(r'\sid="([^"]+)"', page)).items() if n > 1]
    assert repeated == []


# -- a signed-in dashboard, kept per session while what it was made of is unchanged -------------

def _renders(app):
    """The templates rendered while the block runs (a kept page renders none)."""
    from contextlib import contextmanager

    from flask import template_rendered

    @contextmanager
    def watching():
        rendered: list[str] = []

        def record(_app, template, **_context) -> None:
            rendered.append(template.name)

        with template_rendered.connected_to(record, app):
            yield rendered

    return watching()


def _invite_elsewhere(db, harbour, address: str) -> None:
    """An invitation made by another process (a worker, the CLI), not through this app."""
    from core.identity import invitations
    from core.scoping import TenantContext
    from core.uow import UnitOfWork

    with UnitOfWork(db, tenant=TenantContext.of(harbour.tenant.id)) as unit:
        invitations.invite_client(unit, harbour.therapist, address)
        unit.commit()


def test_a_kept_dashboard_shows_a_change_committed_elsewhere_on_the_next_request(
        app, client, db) -> None:
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    login(client, harbour.therapist_email)
    client.get("/therapist")
    with _renders(app) as rendered:
        kept = client.get("/therapist")
    assert kept.status_code == 200 and rendered == []  # served from what was kept
    with _renders(app) as rendered:
        client.get("/therapist?from=newsletter")
    assert rendered  # not one kept copy per query string a link may carry
    _invite_elsewhere(db, harbour, "dora@harbour.example")
    with _renders(app) as rendered:
        page = client.get("/therapist").get_data(as_text=True)
    assert "dora@harbour.example" in page and "dora@harbour.example" not in kept.get_data(
        as_text=True)
    assert rendered[0] == "dashboards/therapist.html"


def test_a_kept_dashboard_is_not_served_past_a_change_by_the_clock(
        app, client, db, monkeypatch) -> None:
    from core import clock
    from core.identity.invitations import RESEND_COOLDOWN

    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")  # one invitation, just sent
    login(client, harbour.therapist_email)
    for _ in range(2):
        page = client.get("/therapist").get_data(as_text=True)
        assert 'data-testid="resend-cooldown"' in page and "Resend</button>" not in page
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + RESEND_COOLDOWN)
    page = client.get("/therapist").get_data(as_text=True)
    assert 'data-testid="resend-cooldown"' not in page and "Resend</button>" in page


def test_each_copy_of_a_kept_dashboard_has_its_own_nonce_token_and_moment(
        app, client, db) -> None:
    import re
    from datetime import datetime

    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    login(client, harbour.therapist_email)
    client.get("/therapist")
    copies = [client.get("/therapist") for _ in range(2)]
    moments = []
    for copy in copies:
        tags, policy = _nonces(copy)
        assert tags == {policy}
        body = copy.get_data(as_text=True)
        tokens = set(re.findall(r'name="csrf_token" value="([^"]+)"', body))
        tokens |= set(re.findall(r'<meta name="csrf-token" content="([^"]+)"', body))
        assert len(tokens) == 1  # every form and the page's JSON calls: the one that posts
        moments.append(datetime.fromisoformat(
            re.search(r'data-rendered-at="([^"]+)"', body).group(1)))
    assert _nonces(copies[0])[1] != _nonces(copies[1])[1]
    assert moments[0] < moments[1]
    sent = client.post("/therapist/invitations", data={
        "email": "eli@harbour.example", "csrf_token": tokens.pop()})
    assert sent.status_code == 302  # the kept copy's token is this session's own
    page = client.get("/therapist").get_data(as_text=True)
    assert "Invitation sent to eli@harbour.example" in page  # the notice, shown once
    assert "Invitation sent to" not in client.get("/therapist").get_data(as_text=True)


def test_nobody_is_served_the_page_kept_for_someone_else(app, db) -> None:
    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    willow = practice(db, "Willow Therapy", slug_hint="willow")
    ada, ben = app.test_client(), app.test_client()
    login(ada, harbour.therapist_email)
    login(ben, willow.therapist_email)
    for _ in range(2):
        mine, theirs = (ada.get("/therapist").get_data(as_text=True),
                        ben.get("/therapist").get_data(as_text=True))
        assert "Harbour Counselling" in mine and "Willow Therapy" not in mine
        assert "Willow Therapy" in theirs and "Harbour Counselling" not in theirs
