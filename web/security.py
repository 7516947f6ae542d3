"""Security set-up in one place: proxy headers, Talisman (CSP, HSTS), rate limits, CSRF.

Each app gets its own extension instances (several apps live side by side in the tests); views
mark themselves with the decorators below and `init_app` applies what they ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import flask
from flask import Flask
from flask_talisman import Talisman
from flask_talisman.talisman import NONCE_LENGTH, get_random_string
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


NONCE_IN = ("script-src", "style-src")
FRAME_OPTIONS = "DENY"
# no-referrer would break Flask-WTF's same-origin check on HTTPS.
REFERRER_POLICY = "strict-origin-when-cross-origin"
PERMISSIONS_POLICY = {"geolocation": "()", "camera": "()", "microphone": "()"}
HSTS_MAX_AGE = 63072000
HSTS = f"max-age={HSTS_MAX_AGE}; includeSubDomains"


def _directives(policy: dict[str, Any]) -> list[tuple[str, str]]:
    """(section, its text) for each directive of a policy."""
    return [(section, f"{section} {content if isinstance(content, str) else ' '.join(content)}")
            for section, content in policy.items()]


def static_security_headers() -> list[tuple[str, str]]:
    """What Talisman adds to a response that shows no page (no nonce needed), for answers made
    in front of Flask."""
    return [
        ("Permissions-Policy", ", ".join(f"{k}={v}" for k, v in PERMISSIONS_POLICY.items())),
        ("X-Frame-Options", FRAME_OPTIONS),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy",
         "; ".join(text for _section, text in _directives(CONTENT_SECURITY_POLICY))),
        ("Referrer-Policy", REFERRER_POLICY),
    ]


class PlatformTalisman(Talisman):  # type: ignore[misc]
    """Talisman with its per-request work done once. A view's options are looked up once per
    endpoint (Talisman rebuilds them three times per request), the policy's text once, and the
    CSP nonce is made only when a page asks for one (`csp_nonce()` in a template): a response
    without inline-capable tags gets the policy without a nonce, which is stricter still."""

    def init_app(self, app: Flask, **kwargs: Any) -> None:
        self._options_by_endpoint: dict[str | None, dict[str, Any]] = {}
        self._policy_parts: dict[int, list[tuple[str, str]]] = {}
        super().init_app(app, **kwargs)

    def _get_local_options(self) -> dict[str, Any]:
        endpoint = flask.request.endpoint
        options = self._options_by_endpoint.get(endpoint)
        if options is None:
            options = self._options_by_endpoint[endpoint] = dict(super()._get_local_options())
        return options

    def _make_nonce(self) -> None:
        return None  # made on first use, by _get_nonce

    def _get_nonce(self) -> str:
        nonce: str | None = getattr(flask.request, "csp_nonce", None)
        if nonce is None:
            nonce = get_random_string(NONCE_LENGTH)
            flask.request.csp_nonce = nonce  # type: ignore[attr-defined]
        return nonce

    def _parse_policy(self, policy: Any) -> str:
        if isinstance(policy, str):
            return str(super()._parse_policy(policy))
        parts = self._policy_parts.get(id(policy))
        if parts is None:  # a dict of the policy's directives (the only form we configure)
            parts = self._policy_parts[id(policy)] = _directives(policy)
        nonce = getattr(flask.request, "csp_nonce", None)
        if nonce is None:
            return "; ".join(text for _section, text in parts)
        nonce_in = self._get_local_options()["content_security_policy_nonce_in"]
        return "; ".join(f"{text} 'nonce-{nonce}'" if section in nonce_in else text
                         for section, text in parts)


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
    PlatformTalisman(
        app,
        force_https=settings.force_https,
        strict_transport_security=settings.is_production,
        strict_transport_security_max_age=HSTS_MAX_AGE,
        strict_transport_security_include_subdomains=True,
        session_cookie_secure=settings.is_production,
        content_security_policy=CONTENT_SECURITY_POLICY,
        content_security_policy_nonce_in=list(NONCE_IN),
        frame_options=FRAME_OPTIONS,
        referrer_policy=REFERRER_POLICY,
        permissions_policy=PERMISSIONS_POLICY,
    )
    limits.init_app(app)  # before CSRF: a request refused for its token still counts
    CSRFProtect(app)
