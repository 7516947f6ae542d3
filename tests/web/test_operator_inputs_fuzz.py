"""No query string and no form value, however odd, makes an admin's or a practice owner's page
answer with a 500: every page's parameters, and every form the pages show, found by reading
them as a browser would (so a form added later is covered without a line here)."""

from __future__ import annotations

import itertools
import re
from html import unescape

import pytest

from core.identity import signup
from core.scoping import TenantContext
from core.uow import UnitOfWork
from tests.support.factories import practice
from tests.support.flows import PASSWORD, login

ADMIN_EMAIL = "probe-admin@platform.example"
ODD = ["", " ", "abc", "-1", "0", "99999999999999999999", "1e400", "NaN", "inf", "\x00", "[]",
       "'; DROP TABLE accounts;--", "<script>", "../../etc/passwd", "ü" * 3000, "a" * 10_000,
       "2026-13-45", "2026-02-30", "9999-12-31", "0001-01-01", "1.2.3.4/99", "::1/200",
       "not-a-uuid", "00000000-0000-0000-0000-000000000000"]
PARAMETERS = {
    "/api/metrics": ["days", "tenant"],
    "/admin/metrics": ["days"],
    "/admin/health": ["hours"],
    "/admin/audit": ["practice", "type", "actor", "ip", "from", "to", "outcome", "older",
                     "newer"],
    "/therapist/audit": ["type", "actor", "ip", "from", "to", "outcome", "older", "newer"],
    "/api/rate-limit-status": ["scope"],
    "/therapist/clients": ["q", "older"],
    "/inbox": ["older"],
}
PAGES_WITH_FORMS = {
    "admin": ["/admin", "/admin/metrics", "/admin/audit", "/settings", "/admin/practices/{id}"],
    "therapist": ["/therapist", "/settings", "/therapist/audit", "/therapist/clients",
                  "/therapist/privacy", "/account/second-factor", "/account/sessions"],
}
# Forms whose success would end the probe (a log-out, an erasure, a session revoked).
LEFT_OUT = ("/logout", "/erasure", "/revoke", "/remove", "/switch-role")
FORM = re.compile(r'<form[^>]*method="post"[^>]*action="([^"]+)"[^>]*>(.*?)</form>',
                  re.S | re.I)
FIELD = re.compile(r'<(?:input|select|textarea)[^>]*name="([^"]+)"', re.I)
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def people(app, db):
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        signup.create_admin(uow, ADMIN_EMAIL, PASSWORD)
        uow.commit()
    harbour = practice(db, "Harbour", slug_hint="harbour")
    return {"admin": ADMIN_EMAIL, "therapist": harbour.therapist_email}, harbour


def test_no_query_string_gives_a_500(app, people):
    emails, _harbour = people
    failures = []
    for email in emails.values():
        client = app.test_client()
        assert login(client, email).status_code == 302
        for path, names in PARAMETERS.items():
            for name, value in itertools.product(names, ODD):
                status = client.get(path, query_string={name: value}).status_code
                if status >= 500:
                    failures.append((email, path, name, value[:20], status))
            repeated = "&".join(f"{name}=1&{name}=2" for name in names)
            if (status := client.get(f"{path}?{repeated}").status_code) >= 500:
                failures.append((email, path, "repeated", "", status))
    assert not failures


def test_no_form_value_gives_a_500(app, people):
    emails, harbour = people
    failures, answered = [], set()
    for role, email in emails.items():
        client = app.test_client()
        assert login(client, email).status_code == 302
        forms = _forms(client, [page.format(id=harbour.tenant.id)
                                for page in PAGES_WITH_FORMS[role]])
        assert forms, f"no form found on the {role}'s pages"
        for action, (page, names) in forms.items():
            for name, value in itertools.product(names, ODD):
                token = TOKEN.search(client.get(page).get_data(as_text=True))
                data = dict.fromkeys(names, "1") | {
                    name: value, "csrf_token": token.group(1) if token else ""}
                status = client.post(action, data=data).status_code
                answered.add(status)
                if status >= 500:
                    failures.append((role, action, name, value[:20], status))
    assert not failures
    assert 429 not in answered  # a limit would have hidden what lies behind it


def _forms(client, pages: list[str]) -> dict[str, tuple[str, list[str]]]:
    """action -> (the page showing it, its field names), CSRF token aside."""
    forms: dict[str, tuple[str, list[str]]] = {}
    for page in pages:
        html = client.get(page).get_data(as_text=True)
        for action, body in FORM.findall(html):
            action = unescape(action)
            if not any(part in action for part in LEFT_OUT):
                forms[action] = (page, [n for n in FIELD.findall(body) if n != "csrf_token"])
    return forms
