"""What every page and API call has from the first day: headers, ids, errors, CSRF, limits."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask


def test_home_page_renders_with_our_assets(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>Run your practice." in html
    assert '/static/css/app.css' in html
    assert client.get("/static/css/app.css").status_code == 200
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

    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    assert client.post("/probe/form", data={"csrf_token": token}).status_code == 200
    assert client.post("/api/probe", json={}, headers={"X-CSRFToken": token}).status_code == 200


def test_an_unexpected_error_shows_no_internals(app_with_probe_routes: Flask, caplog) -> None:
    app_with_probe_routes.config["PROPAGATE_EXCEPTIONS"] = False
    client = app_with_probe_routes.test_client()
    with caplog.at_level(logging.ERROR):
        response = client.get("/probe/crash")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "hunter2" not in html and "Traceback" not in html and "RuntimeError" not in html
    assert response.headers["X-Request-ID"] in html  # the reference support asks for
    assert any("unhandled error" in r.getMessage() for r in caplog.records)


def test_rate_limit_headers_and_429(app, settings) -> None:
    from core.services import Services
    from web import create_app

    limited = create_app(settings.with_overrides(rate_limit_anonymous="3 per minute"),
                         services=Services.build(settings, db=app.extensions["services"].db))
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


def test_templates_carry_no_inline_styles_or_scripts() -> None:
    """The CSP blocks inline style attributes and un-nonced scripts; none may creep in."""
    from pathlib import Path

    offenders = []
    for path in (Path(__file__).resolve().parents[2] / "web" / "templates").rglob("*.html"):
        html = path.read_text()
        if re.search(r'\sstyle="', html) or re.search(r"<script(?![^>]*nonce=)", html):
            offenders.append(str(path))
        if re.search(r"\son[a-z]+=\"", html):  # onclick= and friends are inline script
            offenders.append(str(path))
    assert offenders == []
