"""Security set-up in one place: proxy headers, Talisman (CSP, HSTS), CSRF, rate limits.

Each app gets its own extension instances (several apps live side by side in the tests); views
mark themselves with the decorators below and `init_app` applies what they ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from core.config import Settings

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
    CSRFProtect(app)
    limiter = Limiter(
        key_func=get_remote_address,
        app=app,
        storage_uri=settings.redis_url or "memory://",
        storage_options={"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        if settings.redis_url else {},
        default_limits=[settings.rate_limit_anonymous],
        headers_enabled=True,
        # Fail open: a Redis outage must not turn every page into an error.
        swallow_errors=True,
        key_prefix="platform-limits",
        strategy="fixed-window",
    )
    limiter.request_filter(_exempt)
    app.extensions["platform_limiter"] = limiter


def _exempt() -> bool:
    """Health probes and static files are never limited (a load balancer polls them)."""
    return request.path.startswith(("/static/", "/api/health")) or request.path == "/favicon.ico"
