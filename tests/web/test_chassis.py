"""What every page and API call has from the first day: headers, ids, errors, CSRF, limits."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask

from tests.conftest import make_settings
from tests.support.apps import make_app
from tests.support.flows import login


def test_home_page_renders_with_our_assets(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>Run your practice." in html
    stylesheet = re.search(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', html).group(1)
    served = client.get(stylesheet)
    assert served.status_code == 200 and served.mimetype == "text/css"
    # The name changes with the content, so browsers may keep it for good.
    assert "immutable" in served.headers["Cache-Control"]
    assert "max-age=315360000" in served.headers["Cache-Control"]
    assert "Set-Cookie" not in served.headers
    plain = client.get("/static/css/app.css")  # for links from outside: a short lifetime
    assert plain.status_code == 200 and "immutable" not in plain.headers["Cache-Control"]
    assert client.get("/favicon.ico").status_code == 200


def test_content_security_policy_uses_nonces_and_forbids_framing(client) -> None:
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "'unsafe-inline'" not in csp
    nonce = re.search(r"'nonce-([^']+)'", directives["script-src"]).group(1)
    assert f"'nonce-{nonce}'" in directives["style-src"]
    html = response.get_data(as_text=True)
    # Every script tag carries this response's nonce.
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    # Each response gets its own nonce.
    assert nonce not in client.get("/").headers["Content-Security-Policy"]


def test_a_response_that_shows_no_page_has_the_policy_without_a_nonce(client) -> None:
    """No page asked for a nonce, so none is offered: nothing inline may run at all."""
    csp = client.get("/api/health/ready").headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


def test_the_liveness_probe_keeps_every_response_s_headers_and_log_line(client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="web.request"):
        response = client.get("/api/health/live", headers={"X-Request-ID": "probe-0001"})
        head = client.head("/api/health/live")
    assert response.status_code == 200 and response.get_json() == {"status": "alive"}
    assert response.headers["X-Request-ID"] == "probe-0001"
    assert response.headers["Cache-Control"] == "no-store"
    for name in ("X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy",
                 "Permissions-Policy"):
        assert response.headers[name] == client.get("/").headers[name]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Set-Cookie" not in response.headers
    assert head.status_code == 200 and head.get_data() == b""
    # A query string is left to Flask, where every URL gets the same checks.
    assert client.get("/api/health/live?x=%00").status_code == 400
    assert client.get("/api/health/live?probe=1").get_json() == {"status": "alive"}
    assert [(r.request_id, r.getMessage().split()[:3]) for r in caplog.records][:1] == [
        ("probe-0001", ["GET", "/api/health/live", "200"])]


def test_the_liveness_probe_says_hsts_over_https_in_production(db, database_url,
                                                               tmp_path) -> None:
    settings = make_settings(database_url, tmp_path, app_env="production")
    client = make_app(settings, db).test_client()
    secure = client.get("/api/health/live", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=63072000")
    assert "Strict-Transport-Security" not in client.get("/api/health/live").headers


def test_every_response_has_a_request_id_that_is_in_the_logs(client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="web.request"):
        first = client.get("/")
        second = client.get("/api/health/live")
    ids = {first.headers["X-Request-ID"], second.headers["X-Request-ID"]}
    assert len(ids) == 2
    logged = {getattr(record, "request_id", None) for record in caplog.records}
    assert ids <= logged


def test_a_plain_request_id_from_a_proxy_is_kept_and_a_hostile_one_replaced(client) -> None:
    assert client.get("/", headers={"X-Request-ID": "edge-1234abcd"}).headers[
        "X-Request-ID"] == "edge-1234abcd"
    replaced = client.get("/", headers={"X-Request-ID": "<script>alert(1)</script> " * 3})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["X-Request-ID"])


def test_unknown_page_is_a_friendly_html_404(client) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Page not found" in html and "Traceback" not in html


def test_unknown_api_route_is_a_json_envelope(client) -> None:
    response = client.get("/api/nope")
    assert response.status_code == 404
    assert response.get_json() == {"error": {"code": "not_found",
                                             "message": "There is nothing at this address."}}
    wrong_method = client.post("/api/health/live")
    assert wrong_method.status_code in (400, 405)
    assert set(wrong_method.get_json()["error"]) == {"code", "message"}


@pytest.fixture
def app_with_probe_routes(app: Flask) -> Flask:
    """Routes that exist only in this test, to exercise the shared error and CSRF machinery."""

    @app.post("/probe/form")
    def probe_form() -> str:
        return "saved"

    @app.post("/api/probe")
    def probe_api() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/probe/crash")
    def probe_crash() -> str:
        raise RuntimeError("secret internals: password=hunter2")

    return app


def test_state_changes_need_a_csrf_token(app_with_probe_routes: Flask) -> None:
    client = app_with_probe_routes.test_client()
    refused = client.post("/probe/form", data={"x": "1"})
    assert refused.status_code == 400
    assert "form has expired" in refused.get_data(as_text=True)
    api_refused = client.post("/api/probe", json={})
    assert api_refused.status_code == 400
    assert api_refused.get_json()["error"]["code"] == "csrf_failed"

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    assert client.post("/probe/form", data={"csrf_token": token}).status_code == 200
    assert client.post("/api/probe", json={}, headers={"X-CSRFToken": token}).status_code == 200


def test_an_unexpected_error_shows_no_internals(app_with_probe_routes: Flask, caplog) -> None:
    app_with_probe_routes.config["PROPAGATE_EXCEPTIONS"] = False
    client = app_with_probe_routes.test_client()
    with caplog.at_level(logging.ERROR):
        response = client.get("/probe/crash")
    assert response.status_code == 500
    assert "X-RateLimit-Remaining" in response.headers  # a 5xx carries its limits too
    assert "Retry-After" not in response.headers
    html = response.get_data(as_text=True)
    assert "hunter2" not in html and "Traceback" not in html and "RuntimeError" not in html
    assert response.headers["X-Request-ID"] in html  # the reference support asks for
    assert any("unhandled error" in r.getMessage() for r in caplog.records)


def test_rate_limit_headers_and_429(app, settings) -> None:
    from tests.support.apps import make_app

    limited = make_app(settings.with_overrides(rate_limit_anonymous="3 per minute"),
                       app.extensions["services"].db)
    client = limited.test_client()
    statuses = [client.get("/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    last = client.get("/")
    assert last.headers["X-RateLimit-Limit"] == "3"
    assert last.headers["X-RateLimit-Remaining"] == "0"
    assert int(last.headers["Retry-After"]) > 0
    assert "Too many requests" in last.get_data(as_text=True)
    # Probes are never limited.
    assert client.get("/api/health/live").status_code == 200


INLINE_STYLE = re.compile(r"<[^>]+\sstyle=")
UNNONCED_SCRIPT = re.compile(r"<script(?![^>]*\bnonce=)")
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+=")


def _pages_as(client, app, arguments: dict[str, str]) -> dict[str, str]:
    """Every GET page this client can reach, by filling each rule's arguments it knows."""
    pages = {}
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.rule.startswith(("/static", "/api")):
            continue
        if set(rule.arguments) - set(arguments):
            continue
        path = rule.build({name: arguments[name] for name in rule.arguments})[1]
        response = client.get(path)
        if response.mimetype == "text/html":
            pages[path] = response.get_data(as_text=True)
    return pages


def test_served_pages_carry_no_inline_styles_scripts_or_handlers(app, db) -> None:
    """The CSP blocks inline style attributes, un-nonced scripts and on…= handlers: no page, as
    any role sees it, may carry one (the browser tests check the same in Chromium)."""
    from tests.support.factories import practice

    harbour = practice(db, "Harbour Counselling", slug_hint="harbour")
    arguments = {"slug": harbour.tenant.slug, "account_id": str(harbour.client.id),
                 "tenant_id": str(harbour.tenant.id)}
    seen: dict[str, str] = {}
    for email in (None, harbour.therapist_email, harbour.client_email):
        client = app.test_client()
        if email:
            login(client, email)
        seen.update({f"{email or 'anonymous'} {path}": html
                     for path, html in _pages_as(client, app, arguments).items()})
    assert len(seen) >= 15, sorted(seen)
    offenders = [page for page, html in seen.items()
                 if INLINE_STYLE.search(html) or UNNONCED_SCRIPT.search(html)
                 or INLINE_HANDLER.search(html)]
    assert offenders == []
