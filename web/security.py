"""Security set-up in one place: proxy headers, Talisman (CSP, HSTS), CSRF, rate limits.

Each app gets its own extension instances (several apps live side by side in the tests); views
mark themselves with the decorators below and `init_app` applies what they ask for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, g, has_request_context, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from core.config import Settings
from core.events.types import EventType
from web.audit import record_security
from web.context import services

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)
# The breach counter outlives its window by this much, for the entry written at its end.
BREACH_COUNT_GRACE_SECONDS = 120

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

    redis_options: dict[str, Any] = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    limiter = Limiter(
        key_func=_client_key,
        app=app,
        storage_uri=settings.redis_url or "memory://",
        storage_options=redis_options if settings.redis_url else {},
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
    _install_outage_log()
    app.after_request(_note_limits_answered)


def apply_route_limits(app: Flask, settings: Settings) -> None:
    """Wrap the views marked with @auth_rate_limited; call after the blueprints are registered."""
    limiter: Limiter = app.extensions["platform_limiter"]
    tight = limiter.limit(settings.rate_limit_auth_endpoints, key_func=get_remote_address,
                          methods=["POST"], scope="auth-endpoints")
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, "auth_rate_limited", False):
            app.view_functions[endpoint] = tight(view)  # type: ignore[assignment]


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
    """One audit entry per limit, client and window, written when the window ends with the
    number of requests it refused: a flood of 429s must not become a flood of audit rows."""
    reset_at = int(limit.reset_at)
    seconds_left = max(1, reset_at - int(time.time()))
    count_key = f"limit-breaches:{limit.key}:{reset_at}"
    refused = services().cache.incr(count_key, seconds_left + BREACH_COUNT_GRACE_SECONDS)
    if refused is not None and refused > 1:
        return  # this window's entry is already on its way
    record_security(EventType.RATE_LIMIT_EXCEEDED, limit=str(limit.limit),
                    count_key=count_key if refused else None,
                    delay_ms=seconds_left * 1000 if refused else None)


def _exempt() -> bool:
    """Health probes and static files are never limited (a load balancer polls them)."""
    return request.path.startswith(("/static/", "/api/health")) or request.path == "/favicon.ico"


class _LimitStorageOutage(logging.Filter):
    """flask-limiter logs a full traceback on every request while its storage (Redis) is down.
    One warning when the outage starts, one line when it ends, nothing in between."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.exc_info and record.getMessage().startswith("Failed to")):
            return True
        if has_request_context():
            g.rate_limits_failed = True
        error = record.exc_info[1]
        with self._lock:
            started, self.down = not self.down, True
        if started:
            log.warning("rate-limit storage unavailable (%s: %s); requests are served without "
                        "limits until it answers again", type(error).__name__,
                        str(error).splitlines()[0][:200] if error else "")
        return False

    def answered(self) -> None:
        with self._lock:
            ended, self.down = self.down, False
        if ended:
            log.warning("rate-limit storage is back; limits apply again")


_OUTAGE = _LimitStorageOutage()


def _install_outage_log() -> None:
    limiter_log = logging.getLogger("flask-limiter")
    if _OUTAGE not in limiter_log.filters:
        limiter_log.addFilter(_OUTAGE)


def _note_limits_answered(response: Response) -> Response:
    if _OUTAGE.down and not g.get("rate_limits_failed") and not _exempt():
        _OUTAGE.answered()
    return response
