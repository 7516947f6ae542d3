"""Security set-up in one place: proxy headers, Talisman (CSP, HSTS), CSRF, rate limits.

Each app gets its own extension instances (several apps live side by side in the tests); views
mark themselves with the decorators below and `init_app` applies what they ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, g, request
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


def auth_rate_limited(view: F) -> F:
    """Log-in, sign-up and reset forms: a tighter limit per client address on their POSTs."""
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
    CSRFProtect(app)
    # Registered before the limiter, so it runs after the limiter's own hook.
    app.after_request(_own_retry_after_wins)

    def application_limit() -> str:
        """The seed's limits: per account once logged in, per address before."""
        if g.get("view") is not None:
            return settings.rate_limit_authenticated
        return settings.rate_limit_anonymous

    limiter = Limiter(
        key_func=_client_key,
        app=app,
        storage_uri=settings.redis_url or "memory://",
        storage_options={"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        if settings.redis_url else {},
        # One budget across all pages (default_limits would give each page its own).
        application_limits=[application_limit],
        headers_enabled=True,
        # Fail open: a Redis outage must not turn every page into an error.
        swallow_errors=True,
        key_prefix="platform-limits",
        strategy="fixed-window",
        on_breach=_record_breach,
    )
    limiter.request_filter(_exempt)
    app.extensions["platform_limiter"] = limiter


def apply_route_limits(app: Flask, settings: Settings) -> None:
    """Wrap the views marked with @auth_rate_limited; call after the blueprints are registered."""
    limiter: Limiter = app.extensions["platform_limiter"]
    tight = limiter.limit(settings.rate_limit_auth_endpoints, key_func=get_remote_address,
                          methods=["POST"], scope="auth-endpoints")
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, "auth_rate_limited", False):
            app.view_functions[endpoint] = tight(view)


def _own_retry_after_wins(response: Response) -> Response:
    """Flask-Limiter stamps the end of its window as Retry-After on every response it counted,
    raising any earlier value; a response that says when to retry after an outage
    (`g.retry_after`) means that, not when the rate budget refills."""
    own = g.get("retry_after")
    if own is not None:
        response.headers["Retry-After"] = str(own)
    return response


def _client_key() -> str:
    view = g.get("view")
    return f"account:{view.account_id}" if view is not None else f"ip:{get_remote_address()}"


def _record_breach(limit: Any) -> None:
    from core.events.types import EventType
    from web.authn import record_security

    record_security(EventType.RATE_LIMIT_EXCEEDED, limit=str(limit.limit))


def _exempt() -> bool:
    """Health probes and static files are never limited (a load balancer polls them)."""
    return request.path.startswith(("/static/", "/api/health")) or request.path == "/favicon.ico"
