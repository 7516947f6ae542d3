"""Security set-up in one place: proxy headers, Talisman (CSP, HSTS), rate limits, CSRF.

Each app gets its own extension instances (several apps live side by side in the tests); views
mark themselves with the decorators below and `init_app` applies what they ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from core.config import Settings
from web import limits

F = TypeVar("F", bound=Callable[..., Any])

# Nothing inline runs without this request's nonce; nothing loads from anywhere but here.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "object-src": "'none'",
}


def auth_rate_limited(view: F) -> F:
    """Log-in, sign-up and reset forms: tighter limits on their POSTs, per client address and
    per target e-mail address (core.ratelimits)."""
    view.auth_rate_limited = True  # type: ignore[attr-defined]
    return view


def plain_http_allowed(view: F) -> F:
    """For probes: a load balancer checks health over plain HTTP inside the network."""
    view.talisman_view_options = {"force_https": False}  # type: ignore[attr-defined]
    return view


def init_app(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )
    Talisman(
        app,
        force_https=settings.force_https,
        strict_transport_security=settings.is_production,
        strict_transport_security_max_age=63072000,
        strict_transport_security_include_subdomains=True,
        session_cookie_secure=settings.is_production,
        content_security_policy=CONTENT_SECURITY_POLICY,
        content_security_policy_nonce_in=["script-src", "style-src"],
        frame_options="DENY",
        # no-referrer would break Flask-WTF's same-origin check on HTTPS.
        referrer_policy="strict-origin-when-cross-origin",
        permissions_policy={"geolocation": "()", "camera": "()", "microphone": "()"},
    )
    limits.init_app(app)  # before CSRF: a request refused for its token still counts
    CSRFProtect(app)
