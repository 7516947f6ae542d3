"""Who is asking: the server-side session behind the cookie, access decorators, the tenant guard.

The cookie (Flask's signed session) carries only a random session id and the CSRF token; the
session itself lives in the database and, warm, in the cache. `g.view` is the SessionView of a
logged-in request, or None.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, abort, g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from core.audit.security import security_entry
from core.events.types import EventType
from core.identity import sessions
from core.identity.sessions import SessionView
from core.tenancy.context import crossing_tenants
from core.uow import Origin
from web.context import services, settings, uow
from web.errors import error_response, wants_json
from workers.security_audit import send_security_entry

F = TypeVar("F", bound=Callable[..., Any])


def current() -> SessionView | None:
    view: SessionView | None = g.get("view")
    return view


# Paths served the same to everyone: no session is looked up for them. Health probes must
# answer whatever the database and the cache are doing, cookie or not.
SESSIONLESS_PATHS = ("/static/", "/api/health")


def _load_session() -> None:
    g.view = None
    raw = session.get("sid")
    if not raw or request.path.startswith(SESSIONLESS_PATHS):
        return
    with services().db.session() as db_session:
        g.view = sessions.load(db_session, services().cache, settings(), raw)
    if g.view is None:
        session.pop("sid", None)  # ended, revoked or timed out: the cookie is now anonymous


def begin_session(raw_session_id: str) -> None:
    """Put a new session in the cookie. Clearing first means a new cookie value and a new CSRF
    token: nothing an attacker planted before login survives it."""
    session.clear()
    session["sid"] = raw_session_id
    session.permanent = True


def end_session_cookie() -> None:
    session.clear()


def origin() -> Origin:
    return Origin(ip=request.remote_addr, user_agent=request.user_agent.string or None)


def record_security(type_: EventType, *, count_key: str | None = None,
                    delay_ms: int | None = None, **fields: Any) -> None:
    """A security audit entry that has no transaction of its own; never dropped. With
    `count_key` it is written `delay_ms` later, with the count of its repeats."""
    view = current()
    if "uow" in g:
        g.uow.end_idle_transaction()
    entry = security_entry(
        type_, origin(),
        tenant_id=view.tenant_uuid if view else None,
        actor_account_id=view.account_uuid if view else None,
        subject=fields.pop("subject", None),
        payload={"method": request.method, "path": request.path[:200], **fields},
        count_key=count_key,
    )
    send_security_entry(services().db, entry, delay_ms=delay_ms)


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

    return wrapper  # type: ignore[return-value]


def role_required(*roles: str) -> Callable[[F], F]:
    def decorate(view_fn: F) -> F:
        @functools.wraps(view_fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            view = current()
            if view is None:
                return _unauthenticated()
            if view.role not in roles:
                record_security(EventType.ACCESS_DENIED, reason="role", role=view.role)
                abort(403)
            return view_fn(*args, **kwargs)

        wrapper.required_roles = roles  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


M = TypeVar("M")


def owned_or_404(model: type[M], object_id: uuid.UUID) -> M:
    """The tenant guard: an object of the current tenant, else 404 — and if it exists in another
    tenant, an ACCESS_DENIED entry (the answer never says it exists)."""
    session = uow().session
    found = session.get(model, object_id)
    if found is not None:
        return found
    table = model.__table__  # type: ignore[attr-defined]
    with crossing_tenants(session):
        exists = session.execute(sa.select(table.c.id).where(table.c.id == object_id)).first()
    if exists:
        record_security(EventType.ACCESS_DENIED, reason="tenant",
                        subject=f"{table.name}:{object_id}")
    abort(404)


def init_app(app: Flask) -> None:
    app.before_request(_load_session)

    @app.context_processor
    def _identity_in_templates() -> dict[str, Any]:
        return {"me": current()}
