"""The web tier: Flask pages and a small JSON API. Handlers parse, call one core service, render.

`create_app` only assembles the web tier; the process's composition root (assembly/) builds the
settings, the services and the worker side once and hands them in.
"""

from __future__ import annotations

from flask import Flask

from core.config import Settings
from core.services import Services
from web.ports import Background


def create_app(settings: Settings, *, services: Services, background: Background) -> Flask:
    from web import (
        account,
        assets,
        audit_views,
        auth,
        authn,
        cli,
        context,
        cookie_session,
        dashboards,
        devmail,
        display,
        errors,
        health,
        health_page,
        inbox,
        inputs,
        metrics,
        mfa,
        notifications,
        onboarding,
        openapi,
        pages,
        passkeys,
        privacy,
        prometheus,
        security,
    )
    from web import settings as settings_pages

    app = context.PlatformFlask(__name__, instance_path=str(settings.instance_path))
    app.config.update(_flask_config(settings))
    app.session_interface = cookie_session.SignedCookieSessions()
    app.extensions["settings"] = settings
    app.extensions["services"] = services
    app.extensions["background"] = background

    context.init_app(app)  # first: the request id must exist before anything can fail
    app.before_request(inputs.reject_unusable_urls)
    authn.init_app(app)  # before the limiter: its key is the account once logged in
    mfa.init_app(app)  # after authn: a session that owes its second factor reaches nothing else
    security.init_app(app, settings)
    errors.init_app(app)
    display.init_app(app)
    for module in (pages, health, auth, dashboards, account, notifications, onboarding, inbox,
                   settings_pages, openapi, audit_views, metrics, prometheus,
                   health_page, privacy, mfa, passkeys):
        app.register_blueprint(module.blueprint)
    if devmail.enabled(settings):  # never in production: there /dev/mail is a plain 404
        app.register_blueprint(devmail.blueprint)
    cli.init_app(app)
    assets.init_app(app, watch=not settings.is_production)  # it wraps the WSGI app
    health.install_liveness_probe(app, production=settings.is_production)  # outermost
    return app


def _flask_config(settings: Settings) -> dict[str, object]:
    production = settings.is_production
    return {
        "SECRET_KEY": settings.secret_key,
        "APP_ENV": settings.app_env,
        "TESTING": settings.app_env == "test",
        "PREFERRED_URL_SCHEME": "https" if settings.force_https else "http",
        # The __Host- prefix pins the cookie to this exact host over HTTPS, path /.
        "SESSION_COOKIE_NAME": "__Host-session" if production else "session",
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "WTF_CSRF_TIME_LIMIT": 3600,
        # The cookie outlives the browser session up to the absolute limit; the server enforces
        # the idle and absolute timeouts itself.
        "PERMANENT_SESSION_LIFETIME": settings.session_absolute_hours * 3600,
        # The cookie is set when it changes (log-in, a flash), not re-signed on every response.
        "SESSION_REFRESH_EACH_REQUEST": False,
        "WTF_CSRF_SSL_STRICT": settings.force_https,
        "TEMPLATES_AUTO_RELOAD": not production,
    }
