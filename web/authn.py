"""Who is asking: the server-side session behind the cookie, access decorators, the practice the
request works in.

The cookie (Flask's signed session) carries only a random session id and the CSRF token; the
session itself lives in the database and, warm, in the cache. `g.view` is the SessionView of a
logged-in request, or None. The request's practice (its tenant context) is decided here, once,
from the session: `core.scoping.context_for`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar, cast

from flask import (
    Flask,
    abort,
    current_app,
    g,
    get_flashed_messages,
    redirect,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from core.events.types import EventType
from core.identity import sessions
from core.identity.sessions import SessionView
from core.localtime import UTC_NAME
from core.notifications import service as notification_service
from core.onboarding import navigation
from core.scoping import context_for, set_context
from core.tenancy import plans
from web.audit import record_security
from web.context import services, settings, uow
from web.errors import error_response, wants_json

F = TypeVar("F", bound=Callable[..., Any])

# Paths served the same to everyone: no session is looked up for them. Health probes must
# answer whatever the database and the cache are doing, cookie or not.
SESSIONLESS_PATHS = ("/static/", "/api/health", "/metrics")


def current() -> SessionView | None:
    view: SessionView | None = g.get("view")
    return view


def me() -> SessionView:
    """The logged-in person, in a view behind `login_required` or `role_required`."""
    view = current()
    if view is None:
        abort(401)
    return view


def has_session_cookie() -> bool:
    """Whether the browser sent a cookie at all. Without one, the session is not even opened:
    an anonymous page neither reads nor sets a cookie, so it varies on nothing (Vary: Cookie)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return app.session_interface.get_cookie_name(app) in request.cookies


def _load_session() -> None:
    g.view = None
    if request.path.startswith(SESSIONLESS_PATHS):
        return
    load_session_view()


def load_session_view() -> None:
    """Look the cookie's session up (a sessionless path may still ask: health's details)."""
    g.view = None
    if not has_session_cookie():
        return
    raw = session.get("sid")
    if not raw:
        return
    unit = uow()
    hint = sessions.Who.from_cookie(session.get("who"))
    g.view = sessions.load(unit.session, services().regions, settings(), raw,
                           prefetch=_read_along(unit.session), hint=hint)
    if g.view is None:
        session.pop("sid", None)  # ended, revoked or timed out: the cookie is now anonymous
        session.pop("who", None)
        return
    g.view = replace(g.view, time_zone=_time_zone(unit.session, g.view))
    who = sessions.Who(g.view.identity_uuid, g.view.account_uuid, g.view.tenant_uuid)
    if who != hint:
        session["who"] = who.as_cookie()  # next time, one round trip (set once per session)
    g.tenant = context_for(g.view.role, g.view.tenant_uuid)
    set_context(unit.session, g.tenant)  # the one place a request's practice is set


def _time_zone(db_session: Any, view: SessionView) -> str:
    """The zone the person gave when setting up this account (read with the session already)."""
    status = navigation.status(db_session, services().regions, view.account_uuid)
    return (status or {}).get("time_zone") or UTC_NAME


def _read_along(db_session: Any) -> sessions.Prefetch:
    """What nearly every request of a logged-in person reads next — the practice's request
    budget (web.limits), the onboarding status (the dashboards' gate and the person's time
    zone) and the bell's unread count — and what this
    request's view says it will read (`reads_ahead`), fetched in the same round trip as the
    session's roles and profile."""
    view_function = current_app.view_functions.get(request.endpoint or "")
    ahead: ReadsAhead | None = getattr(view_function, "reads_ahead", None)

    def entries(identity_id: Any, account_id: Any, tenant_id: Any) -> list[Any]:
        wanted: list[Any] = [navigation.status_entry(db_session, account_id),
                             notification_service.unread_entry(db_session, account_id)]
        if tenant_id is not None:
            wanted.append(plans.budget_entry(db_session, tenant_id))
        if ahead is not None:
            wanted += ahead(db_session, identity_id, tenant_id)
        return wanted

    return entries


# A view's cached reads, given the database session, the identity and the practice (or None).
ReadsAhead = Callable[[Any, Any, Any], list[Any]]


def reads_ahead(entries: ReadsAhead) -> Callable[[F], F]:
    """Mark a view with the cache entries it reads, so that they come with the session's."""
    def mark(view_fn: F) -> F:
        view_fn.reads_ahead = entries  # type: ignore[attr-defined]
        return view_fn

    return mark


def begin_session(raw_session_id: str) -> None:
    """Put a new session in the cookie. Clearing first means a new cookie value and a new CSRF
    token: nothing an attacker planted before login survives it."""
    session.clear()
    session["sid"] = raw_session_id
    session.permanent = True


def end_session_cookie() -> None:
    session.clear()


def _unauthenticated() -> Response:
    record_security(EventType.UNAUTHORIZED_ACCESS_ATTEMPT)
    if wants_json():
        return error_response(401)
    next_path = request.full_path if request.method == "GET" else request.path
    return redirect(url_for("auth.login", next=next_path.rstrip("?")))


def login_required(view_fn: F) -> F:
    @functools.wraps(view_fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current() is None:
            return _unauthenticated()
        return view_fn(*args, **kwargs)

    return cast(F, wrapper)


def role_required(*roles: str, hidden: bool = False) -> Callable[[F], F]:
    """`hidden`: another role gets 404, as if the page did not exist (the audit log)."""

    def decorate(view_fn: F) -> F:
        @functools.wraps(view_fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            view = current()
            if view is None:
                return _unauthenticated()
            if view.role not in roles:
                record_security(EventType.ACCESS_DENIED, reason="role", role=view.role)
                abort(404 if hidden else 403)
            return view_fn(*args, **kwargs)

        wrapper.required_roles = roles  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate


def _flashes(with_categories: bool = False,
             category_filter: Any = ()) -> list[Any]:
    """get_flashed_messages for templates, without touching the session of a browser that has no
    cookie, and so no messages (a message flashed by this very request shows on the next page,
    as the cookie that carries it arrives)."""
    if not has_session_cookie():
        return []
    return list(get_flashed_messages(with_categories, category_filter))


def init_app(app: Flask) -> None:
    app.before_request(_load_session)
    app.jinja_env.globals["get_flashed_messages"] = _flashes

    @app.context_processor
    def _identity_in_templates() -> dict[str, Any]:
        return {"me": current()}
